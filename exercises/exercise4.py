# Exercise 4: train the net with your own backward pass.
#
# This is the backward pass of one training step. The grader runs it at every step of a
# real training run, updates the parameters with your gradients, and checks them against
# autograd. Check it with:
#
#     ninja-grade exercise4            # quick: a few hundred steps, seconds
#     ninja-grade exercise4 --full     # the lecture's whole run: 200,000 steps
#
# Everything from the step's forward pass is defined here, under the lecture's exercise-4
# names (the batchnorm statistics are computed directly, not atom by atom):
#
#     emb = C[Xb];  embcat = emb.view(emb.shape[0], -1);  hprebn = embcat @ W1 + b1
#     bnmean = hprebn.mean(0, keepdim=True);  bnvar = hprebn.var(0, keepdim=True, unbiased=True)
#     bnvar_inv = (bnvar + 1e-5)**-0.5;  bnraw = (hprebn - bnmean) * bnvar_inv
#     hpreact = bngain * bnraw + bnbias;  h = torch.tanh(hpreact);  logits = h @ W2 + b2
#     loss = F.cross_entropy(logits, Yb)
#
# plus the parameters C W1 b1 W2 b2 bngain bnbias, the batch Xb Yb, n (the batch size),
# and torch and F. Shapes are for n = 32, n_hidden = 200.
#
# Name your intermediate gradients as the lecture does (dlogits, dh, dhpreact, dhprebn,
# dembcat, demb): the grader then judges each parameter's gradient on its own.

# TODO: dlogits in one go, as in exercise 2.

# TODO: the 2nd layer.
dW2 = None  # (200, 27)
db2 = None  # (27,)

# TODO: tanh, then batchnorm (dhprebn in one go, as in exercise 3).
dbngain = None  # (1, 200)
dbnbias = None  # (1, 200)

# TODO: the 1st layer.
dW1 = None  # (30, 200)
db1 = None  # (200,)

# TODO: the embedding; repeated rows of C must add up.
dC = None  # (27, 10)
