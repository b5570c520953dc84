# Exercise 2: LayerNorm backward in one go.
#
# The forward pass of exercise 1 is defined here under the same names, and so is
# dhpreact, the true gradient of the loss with respect to hpreact. The LayerNorm layer,
# from hpreln to hpreact, normalises each example across its n_hidden features:
#
#     lnmeani = hpreln.mean(1, keepdim=True)
#     lnvar = ((hpreln - lnmeani)**2).mean(1, keepdim=True)
#     lnraw = (hpreln - lnmeani) * (lnvar + 1e-5)**-0.5
#     hpreact = lngain * lnraw + lnbias
#
# Write dhpreln from dhpreact in one expression. Check with:
#
#     ninja-grade --course examples/layernorm/course.yaml exercise2

# TODO: every output in a row depends on every input of that row, through the mean and
# the variance. Derive it on paper for one row, then vectorise.
dhpreln = None  # (32, 64)
