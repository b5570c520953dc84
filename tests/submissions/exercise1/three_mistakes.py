# Exercise 1: backprop through the whole graph, one atom at a time.  (THREE MISTAKES)
# The solution with three edits: dprobs has the wrong sign, dbndiff leaves out its branch
# through bndiff2, and demb is viewed as a batch of 32.
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
dprobs = -(1.0 / probs) * dlogprobs  # (32, 27)

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
dbngain = (bnraw * dhpreact).sum(0, keepdim=True)  # (1, 64)
dbnbias = dhpreact.sum(0, keepdim=True)  # (1, 64)
dbnraw = bngain * dhpreact  # (32, 64)

# bnraw = bndiff * bnvar_inv
dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)  # (1, 64)

# bnvar_inv = (bnvar + 1e-5)**-0.5
dbnvar = (-0.5 * (bnvar + 1e-5) ** -1.5) * dbnvar_inv  # (1, 64)

# bnvar = 1/(n-1) * bndiff2.sum(0, keepdim=True)
dbndiff2 = (1.0 / (n - 1)) * torch.ones_like(bndiff2) * dbnvar  # (32, 64)

# bndiff feeds bnraw and bndiff2
dbndiff = bnvar_inv * dbnraw  # (32, 64)
pass

# bndiff = hprebn - bnmeani
dbnmeani = (-dbndiff).sum(0, keepdim=True)  # (1, 64)

# hprebn feeds bndiff and bnmeani
dhprebn = dbndiff.clone()  # (32, 64)
dhprebn += 1.0 / n * (torch.ones_like(hprebn) * dbnmeani)

# hprebn = embcat @ W1 + b1
dembcat = dhprebn @ W1.T  # (32, 30)
dW1 = embcat.T @ dhprebn  # (30, 64)
db1 = dhprebn.sum(0)  # (64,)

# embcat = emb.view(emb.shape[0], -1)
demb = dembcat.view(32, 3, 10)  # (32, 3, 10)

# emb = C[Xb]: a row of C used several times collects several gradients
dC = torch.zeros_like(C)  # (27, 10)
for k in range(Xb.shape[0]):
    for j in range(Xb.shape[1]):
        dC[Xb[k, j]] += demb[k, j]
