# Exercise 2: LayerNorm backward in one go.  (SOLUTION)
#
# For one example (one row), with raw = lnraw, D = n_hidden and g = lngain * dhpreact:
#   dhpreln = lnvar_inv / D * (D*g - g.sum() - raw * (g*raw).sum())
# No Bessel factor: the variance divides by D.

dlnraw = lngain * dhpreact
dhpreln = lnvar_inv / n_hidden * (  # (32, 64)
    n_hidden * dlnraw - dlnraw.sum(1, keepdim=True) - lnraw * (dlnraw * lnraw).sum(1, keepdim=True)
)
