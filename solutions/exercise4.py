# Exercise 4: train the net with your own backward pass.  (SOLUTION)
#
# Everything from one training step's forward pass is defined here, under the lecture's
# exercise-4 names: emb embcat hprebn bnmean bnvar bnvar_inv bnraw hpreact h logits loss,
# the parameters C W1 b1 W2 b2 bngain bnbias, the batch Xb Yb, n (the batch size), and
# torch and F. Shapes are for n = 32, n_hidden = 200.

# cross-entropy, in one go (exercise 2)
dlogits = F.softmax(logits, 1)  # (32, 27)
dlogits[range(n), Yb] -= 1
dlogits /= n

# 2nd layer: logits = h @ W2 + b2
dh = dlogits @ W2.T  # (32, 200)
dW2 = h.T @ dlogits  # (200, 27)
db2 = dlogits.sum(0)  # (27,)

# tanh
dhpreact = (1.0 - h**2) * dh  # (32, 200)

# batchnorm, in one go (exercise 3)
dbngain = (bnraw * dhpreact).sum(0, keepdim=True)  # (1, 200)
dbnbias = dhpreact.sum(0, keepdim=True)  # (1, 200)
dhprebn = bngain * bnvar_inv / n * (  # (32, 200)
    n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0)
)

# 1st layer: hprebn = embcat @ W1 + b1
dembcat = dhprebn @ W1.T  # (32, 30)
dW1 = embcat.T @ dhprebn  # (30, 200)
db1 = dhprebn.sum(0)  # (200,)

# embedding: emb = C[Xb]; index_add_ adds up repeated rows, and is much faster than a loop
demb = dembcat.view(emb.shape)  # (32, 3, 10)
dC = torch.zeros_like(C).index_add_(0, Xb.view(-1), demb.view(-1, demb.shape[2]))  # (27, 10)
