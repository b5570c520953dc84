# Exercise 1: backprop through the whole graph, one atom at a time.  (HALF FINISHED)
# The solution down to dhpreact; the stub from dbngain on.
#
# Everything from the forward pass is already defined here, under the lecture's names:
# logprobs probs counts counts_sum counts_sum_inv norm_logits logit_maxes logits h
# hpreact bnraw bnvar_inv bnvar bndiff2 bndiff hprebn bnmeani embcat emb, the
# parameters C W1 b1 W2 b2 bngain bnbias, the batch Xb Yb, the sizes n (the batch
# size), vocab_size, block_size, n_embd, n_hidden, and torch and F.
# The shapes in the comments are those of the lecture's batch (n = 32).

# loss = -logprobs[range(n), Yb].mean()
dlogprobs = torch.zeros_like(logprobs)  # (32, 27)
dlogprobs[range(n), Yb] = -1.0 / n

# logprobs = probs.log()
dprobs = (1.0 / probs) * dlogprobs  # (32, 27)

# probs = counts * counts_sum_inv
dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)  # (32, 1)

# counts_sum_inv = counts_sum**-1
dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv  # (32, 1)

# counts feeds both probs and counts_sum: two contributions
dcounts = counts_sum_inv * dprobs  # (32, 27)
dcounts += torch.ones_like(counts) * dcounts_sum

# counts = norm_logits.exp()
dnorm_logits = counts * dcounts  # (32, 27)

# norm_logits = logits - logit_maxes
dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)  # (32, 1)

# logits feeds norm_logits and, through max, logit_maxes
dlogits = dnorm_logits.clone()  # (32, 27)
dlogits += F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes

# logits = h @ W2 + b2
dh = dlogits @ W2.T  # (32, 64)
dW2 = h.T @ dlogits  # (64, 27)
db2 = dlogits.sum(0)  # (27,)

# h = torch.tanh(hpreact)
dhpreact = (1.0 - h**2) * dh  # (32, 64)

# hpreact = bngain * bnraw + bnbias
# TODO: bngain and bnbias are (1, 64), broadcast over the batch.
dbngain = None  # (1, 64)
dbnbias = None  # (1, 64)
dbnraw = None  # (32, 64)

# bnraw = bndiff * bnvar_inv
# TODO: bnvar_inv is (1, 64), broadcast over the batch.
dbnvar_inv = None  # (1, 64)

# bnvar_inv = (bnvar + 1e-5)**-0.5
# TODO: the local derivative of a power.
dbnvar = None  # (1, 64)

# bnvar = 1/(n-1) * (bndiff2).sum(0, keepdim=True)
# TODO: a sum in the forward pass is a broadcast in the backward pass. Mind n-1.
dbndiff2 = None  # (32, 64)

# bndiff2 = bndiff**2;  bnraw = bndiff * bnvar_inv
# TODO: bndiff is used twice.
dbndiff = None  # (32, 64)

# bndiff = hprebn - bnmeani
# TODO: bnmeani is (1, 64), broadcast over the batch.
dbnmeani = None  # (1, 64)

# bndiff = hprebn - bnmeani;  bnmeani = 1/n * hprebn.sum(0, keepdim=True)
# TODO: hprebn is used twice.
dhprebn = None  # (32, 64)

# hprebn = embcat @ W1 + b1
# TODO: another linear layer.
dembcat = None  # (32, 30)
dW1 = None  # (30, 64)
db1 = None  # (64,)

# embcat = emb.view(emb.shape[0], -1)
# TODO: a view only rearranges; undo it.
demb = None  # (32, 3, 10)

# emb = C[Xb]
# TODO: each row of C is picked out by several entries of Xb; every use adds up.
dC = None  # (27, 10)
