# Exercise 1: backprop through the whole graph, one atom at a time.
#
# Replace each `None` with the gradient of the loss with respect to that tensor,
# without loss.backward(). Check your work at any time with:
#
#     ninja-grade exercise1
#
# Everything from the forward pass is already defined here, under the lecture's names:
# logprobs probs counts counts_sum counts_sum_inv norm_logits logit_maxes logits h
# hpreact bnraw bnvar_inv bnvar bndiff2 bndiff hprebn bnmeani embcat emb, the
# parameters C W1 b1 W2 b2 bngain bnbias, the batch Xb Yb, the sizes n (the batch
# size), vocab_size, block_size, n_embd, n_hidden, and torch and F.
# The shapes in the comments are those of the lecture's batch (n = 32); your code must
# work for any n. A gradient always has the shape of its tensor.

# loss = -logprobs[range(n), Yb].mean()
# TODO: how does the loss change with each entry of logprobs? Most entries are not used.
dlogprobs = None  # (32, 27)

# logprobs = probs.log()
# TODO: the local derivative of log.
dprobs = None  # (32, 27)

# probs = counts * counts_sum_inv
# TODO: counts_sum_inv is (32, 1), broadcast across the 27 columns.
dcounts_sum_inv = None  # (32, 1)

# counts_sum_inv = counts_sum**-1
# TODO: the local derivative of x**-1.
dcounts_sum = None  # (32, 1)

# probs = counts * counts_sum_inv;  counts_sum = counts.sum(1, keepdims=True)
# TODO: counts is used twice; add up both contributions.
dcounts = None  # (32, 27)

# counts = norm_logits.exp()
# TODO: the local derivative of exp.
dnorm_logits = None  # (32, 27)

# norm_logits = logits - logit_maxes
# TODO: logit_maxes is (32, 1), broadcast across the columns.
dlogit_maxes = None  # (32, 1)

# norm_logits = logits - logit_maxes;  logit_maxes = logits.max(1, keepdim=True).values
# TODO: logits reaches the loss directly and through the max of its row.
dlogits = None  # (32, 27)

# logits = h @ W2 + b2
# TODO: the gradient of a matmul is a matmul; match the shapes.
dh = None  # (32, 64)
dW2 = None  # (64, 27)
db2 = None  # (27,)

# h = torch.tanh(hpreact)
# TODO: the local derivative of tanh, written in terms of its output h.
dhpreact = None  # (32, 64)

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
