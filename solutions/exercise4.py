# Exercise 4: train the net with your own backward pass.  (SOLUTION)
#
# Everything from one training step's forward pass is defined here, under the lecture's
# exercise-4 names: emb embcat hprebn bnmean bnvar bnvar_inv bnraw hpreact h logits loss,
# the parameters C W1 b1 W2 b2 bngain bnbias, the batch Xb Yb, n (the batch size), and
# torch and F. Shapes are for n = 32, n_hidden = 200.

# cross-entropy, in one go (exercise 2): softmax minus the one-hot of the labels, over n
dlogits = (F.softmax(logits, 1) - F.one_hot(Yb, logits.shape[1])) / n  # (32, 27)

# 2nd layer: logits = h @ W2 + b2
dh = dlogits @ W2.T  # (32, 200)
dW2 = h.T @ dlogits  # (200, 27)
db2 = dlogits.sum(0)  # (27,)

# tanh
dhpreact = (1.0 - h * h) * dh  # (32, 200)

# batchnorm, in one go (exercise 3); the two column sums it needs are dbngain and dbnbias
dbngain = (bnraw * dhpreact).sum(0, keepdim=True)  # (1, 200)
dbnbias = dhpreact.sum(0, keepdim=True)  # (1, 200)
dhprebn = (bngain * bnvar_inv / n) * (n * dhpreact - dbnbias - n / (n - 1) * bnraw * dbngain)  # (32, 200)

# 1st layer: hprebn = embcat @ W1 + b1
dW1 = embcat.T @ dhprebn  # (30, 200)
db1 = dhprebn.sum(0)  # (200,)

# embedding: emb = C[Xb]; index_add_ adds up repeated rows, and is much faster than a loop
demb = (dhprebn @ W1.T).view(emb.shape)  # (32, 3, 10)
dC = torch.zeros_like(C).index_add_(0, Xb.view(-1), demb.view(-1, demb.shape[2]))  # (27, 10)
