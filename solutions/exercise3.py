# Exercise 3: batchnorm backward in one go.  (SOLUTION)
#
# For one column, with raw = bnraw and g = dhpreact:
#   dhprebn = bngain * bnvar_inv / n * (n*g - g.sum() - n/(n-1) * raw * (g*raw).sum())

dhprebn = bngain * bnvar_inv / n * (  # (32, 64)
    n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0)
)
