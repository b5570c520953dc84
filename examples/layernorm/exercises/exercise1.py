# Exercise 1: backprop through the LayerNorm MLP, one atom at a time.
#
# The lecture's MLP with LayerNorm in place of BatchNorm: each example's hidden layer is
# normalised across its own 64 features. Replace each `None` with the gradient of the loss
# with respect to that tensor, without loss.backward(). Check your work with:
#
#     ninja-grade --course examples/layernorm/course.yaml exercise1
#
# Defined here under the forward pass's names: hpreln lnmeani lndiff lndiff2 lnvar
# lnvar_inv lnraw hpreact h logits embcat emb, the parameters C W1 b1 W2 b2 lngain
# lnbias, the batch Xb Yb, the sizes n vocab_size block_size n_embd n_hidden, torch and F.
# The shapes in the comments are those of the first case (n = 32); your code must work
# for any n. A gradient always has the shape of its tensor.

# loss = F.cross_entropy(logits, Yb)
# TODO: softmax of the logits, minus 1 at the correct label, over n.
dlogits = None  # (32, 27)

# logits = h @ W2 + b2
# TODO: a matrix product's gradients; b2 was broadcast over the batch.
dh = None  # (32, 64)
dW2 = None  # (64, 27)
db2 = None  # (27,)

# h = torch.tanh(hpreact)
# TODO: the local derivative of tanh, in terms of h.
dhpreact = None  # (32, 64)

# hpreact = lngain * lnraw + lnbias
# TODO: lngain and lnbias are (1, 64), broadcast over the batch.
dlngain = None  # (1, 64)
dlnbias = None  # (1, 64)
dlnraw = None  # (32, 64)

# lnraw = lndiff * lnvar_inv
# TODO: lnvar_inv is (32, 1): broadcast across the features, not the batch.
dlnvar_inv = None  # (32, 1)

# lnvar_inv = (lnvar + 1e-5)**-0.5
# TODO: the local derivative of x**-0.5.
dlnvar = None  # (32, 1)

# lnvar = lndiff2.mean(1, keepdim=True)
# TODO: a mean over the features copies the gradient back to each, divided by their number.
dlndiff2 = None  # (32, 64)

# lndiff feeds lnraw and lndiff2 (lndiff2 = lndiff**2)
# TODO: two contributions, added.
dlndiff = None  # (32, 64)

# lndiff = hpreln - lnmeani
# TODO: lnmeani is (32, 1), broadcast across the features.
dlnmeani = None  # (32, 1)

# hpreln feeds lndiff and lnmeani (lnmeani = hpreln.mean(1, keepdim=True))
# TODO: two contributions, added.
dhpreln = None  # (32, 64)

# hpreln = embcat @ W1 + b1
# TODO: as for the second layer. Under LayerNorm, b1 matters.
dembcat = None  # (32, 30)
dW1 = None  # (30, 64)
db1 = None  # (64,)

# embcat = emb.view(emb.shape[0], -1)
# TODO: undo the view.
demb = None  # (32, 3, 10)

# emb = C[Xb]
# TODO: route each row of demb back to the row of C it came from; some rows are picked twice.
dC = None  # (27, 10)
