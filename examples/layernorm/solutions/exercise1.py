# Exercise 1: backprop through the LayerNorm MLP, one atom at a time.  (SOLUTION)
#
# Defined here under the forward pass's names: hpreln lnmeani lndiff lndiff2 lnvar
# lnvar_inv lnraw hpreact h logits embcat emb, the parameters C W1 b1 W2 b2 lngain
# lnbias, the batch Xb Yb, the sizes n vocab_size block_size n_embd n_hidden, torch and F.

# loss = F.cross_entropy(logits, Yb)
dlogits = F.softmax(logits, 1)  # (32, 27)
dlogits[range(n), Yb] -= 1
dlogits /= n

# logits = h @ W2 + b2
dh = dlogits @ W2.T  # (32, 64)
dW2 = h.T @ dlogits  # (64, 27)
db2 = dlogits.sum(0)  # (27,)

# h = torch.tanh(hpreact)
dhpreact = (1.0 - h**2) * dh  # (32, 64)

# hpreact = lngain * lnraw + lnbias
dlngain = (lnraw * dhpreact).sum(0, keepdim=True)  # (1, 64)
dlnbias = dhpreact.sum(0, keepdim=True)  # (1, 64)
dlnraw = lngain * dhpreact  # (32, 64)

# lnraw = lndiff * lnvar_inv: lnvar_inv is (32, 1), broadcast across the features
dlnvar_inv = (lndiff * dlnraw).sum(1, keepdim=True)  # (32, 1)

# lnvar_inv = (lnvar + 1e-5)**-0.5
dlnvar = -0.5 * (lnvar + 1e-5) ** -1.5 * dlnvar_inv  # (32, 1)

# lnvar = lndiff2.mean(1, keepdim=True)
dlndiff2 = torch.ones_like(lndiff2) / n_hidden * dlnvar  # (32, 64)

# lndiff feeds lnraw and lndiff2: two contributions
dlndiff = lnvar_inv * dlnraw + 2 * lndiff * dlndiff2  # (32, 64)

# lndiff = hpreln - lnmeani
dlnmeani = -dlndiff.sum(1, keepdim=True)  # (32, 1)

# hpreln feeds lndiff and lnmeani
dhpreln = dlndiff + torch.ones_like(hpreln) / n_hidden * dlnmeani  # (32, 64)

# hpreln = embcat @ W1 + b1
dembcat = dhpreln @ W1.T  # (32, 30)
dW1 = embcat.T @ dhpreln  # (30, 64)
db1 = dhpreln.sum(0)  # (64,)

# embcat = emb.view(emb.shape[0], -1)
demb = dembcat.view(emb.shape)  # (32, 3, 10)

# emb = C[Xb]: a row of C picked several times gets every contribution
dC = torch.zeros_like(C)  # (27, 10)
dC.index_add_(0, Xb.view(-1), demb.view(-1, n_embd))
