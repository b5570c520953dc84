# A correct exercise 1 written unlike the course's solution: einsum, index_add_, a
# helper function, one_hot/scatter, keepdim-less sums, and another statement order.
import torch.nn.functional as F2


def unbroadcast(grad, like):
    """Sum grad over the dimensions along which `like` was broadcast."""
    dims = [i for i, (g, w) in enumerate(zip(grad.shape, like.shape)) if w == 1 and g != 1]
    return grad.sum(dims, keepdim=True) if dims else grad


dlogprobs = -F2.one_hot(Yb, vocab_size).float() / Yb.shape[0]
dprobs = dlogprobs / probs
dcounts_sum_inv = unbroadcast(counts * dprobs, counts_sum_inv)
dcounts = dprobs * counts_sum_inv            # first half of dcounts
dcounts_sum = -dcounts_sum_inv / counts_sum**2
dcounts = dcounts + dcounts_sum              # second half, after dcounts_sum
dnorm_logits = dcounts * norm_logits.exp()
dlogit_maxes = -dnorm_logits.sum(1, keepdim=True)
onehot_max = torch.zeros_like(logits).scatter_(1, logits.argmax(1, keepdim=True), 1.0)
dlogits = dnorm_logits + onehot_max * dlogit_maxes
db2 = dlogits.sum(0)
dW2 = torch.einsum("bi,bj->ij", h, dlogits)
dh = torch.einsum("bj,ij->bi", dlogits, W2)
dhpreact = dh * (1 - torch.tanh(hpreact) ** 2)
dbnbias = unbroadcast(dhpreact, bnbias)
dbnraw = dhpreact * bngain
dbngain = unbroadcast(dhpreact * bnraw, bngain)
dbnvar_inv = unbroadcast(dbnraw * bndiff, bnvar_inv)
dbnvar = dbnvar_inv * (-0.5) * (bnvar + 1e-5) ** -1.5
dbndiff2 = dbnvar.expand_as(bndiff2) / (n - 1)
dbndiff = dbnraw * bnvar_inv + dbndiff2 * 2 * bndiff
dbnmeani = -dbndiff.sum(0)                   # (64,): judged as (1, 64)
dhprebn = dbndiff + dbnmeani / n
db1 = dhprebn.sum(0)
dW1 = torch.einsum("bi,bj->ij", embcat, dhprebn)
dembcat = torch.einsum("bj,ij->bi", dhprebn, W1)
demb = dembcat.reshape(-1, block_size, n_embd)
dC = torch.zeros_like(C).index_add_(0, Xb.view(-1), demb.view(-1, n_embd))
