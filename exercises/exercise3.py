# Exercise 3: batchnorm backward in one go.
#
# The forward pass of exercise 1 is defined here under the same names, and so is
# dhpreact, the true gradient of the loss with respect to hpreact. The batchnorm
# layer, from hprebn to hpreact, is:
#
#     bnmeani = 1/n * hprebn.sum(0, keepdim=True)
#     bnvar = 1/(n-1) * ((hprebn - bnmeani)**2).sum(0, keepdim=True)
#     bnraw = (hprebn - bnmeani) * (bnvar + 1e-5)**-0.5
#     hpreact = bngain * bnraw + bnbias
#
# Write dhprebn from dhpreact in one expression. Check with:
#
#     ninja-grade exercise3

# TODO: every output in a column depends on every input of that column, through the
# mean and the variance. Derive it on paper for one column, then vectorise.
dhprebn = None  # (32, 64)
