"""Writes the fixture notebooks in this folder: students' notebooks in the lecture's layout.

Run it from the repository root (python tests/notebooks/make_fixtures.py) after changing
it; the notebooks it writes are committed, and tests/test_notebooks.py says what each
must be graded as.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

HERE = Path(__file__).resolve().parent

IMPORTS = """import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt # for making figures
%matplotlib inline"""

WGET = """# download the names.txt file from github
!wget https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"""

WORDS = """# read in all the words
words = open('names.txt', 'r').read().splitlines()
print(len(words))
print(max(len(w) for w in words))
print(words[:8])"""

VOCAB = """# build the vocabulary of characters and mappings to/from integers
chars = sorted(list(set(''.join(words))))
stoi = {s:i+1 for i,s in enumerate(chars)}
stoi['.'] = 0
itos = {i:s for s,i in stoi.items()}
vocab_size = len(itos)
print(itos)
print(vocab_size)"""

DATASET = """# build the dataset
block_size = 3 # context length: how many characters do we take to predict the next one?

def build_dataset(words):
  X, Y = [], []

  for w in words:
    context = [0] * block_size
    for ch in w + '.':
      ix = stoi[ch]
      X.append(context)
      Y.append(ix)
      context = context[1:] + [ix] # crop and append

  X = torch.tensor(X)
  Y = torch.tensor(Y)
  print(X.shape, Y.shape)
  return X, Y

import random
random.seed(42)
random.shuffle(words)
n1 = int(0.8*len(words))
n2 = int(0.9*len(words))

Xtr,  Ytr  = build_dataset(words[:n1])     # 80%
Xdev, Ydev = build_dataset(words[n1:n2])   # 10%
Xte,  Yte  = build_dataset(words[n2:])     # 10%"""

CMP = """# utility function we will use later when comparing manual gradients to PyTorch gradients
def cmp(s, dt, t):
  ex = torch.all(dt == t.grad).item()
  app = torch.allclose(dt, t.grad)
  maxdiff = (dt - t.grad).abs().max().item()
  print(f'{s:15s} | exact: {str(ex):5s} | approximate: {str(app):5s} | maxdiff: {maxdiff}')"""

PARAMS = """n_embd = 10 # the dimensionality of the character embedding vectors
n_hidden = 64 # the number of neurons in the hidden layer of the MLP

g = torch.Generator().manual_seed(SEED) # for reproducibility
C  = torch.randn((vocab_size, n_embd),            generator=g)
# Layer 1
W1 = torch.randn((n_embd * block_size, n_hidden), generator=g) * (5/3)/((n_embd * block_size)**0.5)
b1 = torch.randn(n_hidden,                        generator=g) * 0.1 # using b1 just for fun, it's useless because of BN
# Layer 2
W2 = torch.randn((n_hidden, vocab_size),          generator=g) * 0.1
b2 = torch.randn(vocab_size,                      generator=g) * 0.1
# BatchNorm parameters
bngain = torch.randn((1, n_hidden))*0.1 + 1.0
bnbias = torch.randn((1, n_hidden))*0.1

parameters = [C, W1, b1, W2, b2, bngain, bnbias]
print(sum(p.nelement() for p in parameters)) # number of parameters in total
for p in parameters:
  p.requires_grad = True"""

BATCH = """batch_size = BATCH
n = batch_size # a shorter variable also, for convenience
# construct a minibatch
ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
Xb, Yb = Xtr[ix], Ytr[ix] # batch X,Y"""

FORWARD = """# forward pass, "chunkated" into smaller steps that are possible to backward one at a time

emb = C[Xb] # embed the characters into vectors
embcat = emb.view(emb.shape[0], -1) # concatenate the vectors
# Linear layer 1
hprebn = embcat @ W1 + b1 # hidden layer pre-activation
# BatchNorm layer
bnmeani = 1/n*hprebn.sum(0, keepdim=True)
bndiff = hprebn - bnmeani
bndiff2 = bndiff**2
bnvar = 1/(n-1)*(bndiff2).sum(0, keepdim=True) # note: Bessel's correction (dividing by n-1, not n)
bnvar_inv = (bnvar + 1e-5)**-0.5
bnraw = bndiff * bnvar_inv
hpreact = bngain * bnraw + bnbias
# Non-linearity
h = torch.tanh(hpreact) # hidden layer
# Linear layer 2
logits = h @ W2 + b2 # output layer
# cross entropy loss (same as F.cross_entropy(logits, Yb))
logit_maxes = logits.max(1, keepdim=True).values
norm_logits = logits - logit_maxes # subtract max for numerical stability
counts = norm_logits.exp()
counts_sum = counts.sum(1, keepdims=True)
counts_sum_inv = counts_sum**-1 # if I use (1.0 / counts_sum) instead then I can't get backprop to be bit exact...
probs = counts * counts_sum_inv
logprobs = probs.log()
loss = -logprobs[range(n), Yb].mean()

# PyTorch backward pass
for p in parameters:
  p.grad = None
for t in [logprobs, probs, counts, counts_sum, counts_sum_inv, # afaik there is no cleaner way
          norm_logits, logit_maxes, logits, h, hpreact, bnraw,
         bnvar_inv, bnvar, bndiff2, bndiff, hprebn, bnmeani,
         embcat, emb]:
  t.retain_grad()
loss.backward()
loss"""

EX1_HEADER = """# Exercise 1: backprop through the whole thing manually,
# backpropagating through exactly all of the variables
# as they are defined in the forward pass above, one by one
"""

# Exercise 1, as the lecture solves it: (gradient lines, cmp line) per step.
EX1 = [
    ("dlogprobs = torch.zeros_like(logprobs)\ndlogprobs[range(n), Yb] = -1.0/n", "logprobs"),
    ("dprobs = (1.0 / probs) * dlogprobs", "probs"),
    ("dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)", "counts_sum_inv"),
    ("dcounts = counts_sum_inv * dprobs", None),
    ("dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv", "counts_sum"),
    ("dcounts += torch.ones_like(counts) * dcounts_sum", "counts"),
    ("dnorm_logits = counts * dcounts", "norm_logits"),
    ("dlogits = dnorm_logits.clone()", None),
    ("dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)", "logit_maxes"),
    ("dlogits += F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes", "logits"),
    ("dh = dlogits @ W2.T", "h"),
    ("dW2 = h.T @ dlogits", "W2"),
    ("db2 = dlogits.sum(0)", "b2"),
    ("dhpreact = (1.0 - h**2) * dh", "hpreact"),
    ("dbngain = (bnraw * dhpreact).sum(0, keepdim=True)", "bngain"),
    ("dbnraw = bngain * dhpreact", "bnraw"),
    ("dbnbias = dhpreact.sum(0, keepdim=True)", "bnbias"),
    ("dbndiff = bnvar_inv * dbnraw", None),
    ("dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)", "bnvar_inv"),
    ("dbnvar = (-0.5*(bnvar + 1e-5)**-1.5) * dbnvar_inv", "bnvar"),
    ("dbndiff2 = (1.0/(n-1))*torch.ones_like(bndiff2) * dbnvar", "bndiff2"),
    ("dbndiff += (2*bndiff) * dbndiff2", "bndiff"),
    ("dhprebn = dbndiff.clone()", None),
    ("dbnmeani = (-dbndiff).sum(0)", "bnmeani"),
    ("dhprebn += 1.0/n * (torch.ones_like(hprebn) * dbnmeani)", "hprebn"),
    ("dembcat = dhprebn @ W1.T", "embcat"),
    ("dW1 = embcat.T @ dhprebn", "W1"),
    ("db1 = dhprebn.sum(0)", "b1"),
    ("demb = dembcat.view(emb.shape)", "emb"),
    ("dC = torch.zeros_like(C)\nfor k in range(Xb.shape[0]):\n  for j in range(Xb.shape[1]):\n"
     "    ix = Xb[k,j]\n    dC[ix] += demb[k,j]", "C"),
]

EX2_FORWARD = """# Exercise 2: backprop through cross_entropy but all in one go
# to complete this challenge look at the mathematical expression of the loss,
# take the derivative, simplify the expression, and just write it out

# forward pass

# before:
# logit_maxes = logits.max(1, keepdim=True).values
# norm_logits = logits - logit_maxes # subtract max for numerical stability
# counts = norm_logits.exp()
# counts_sum = counts.sum(1, keepdims=True)
# counts_sum_inv = counts_sum**-1
# probs = counts * counts_sum_inv
# logprobs = probs.log()
# loss = -logprobs[range(n), Yb].mean()

# now:
loss_fast = F.cross_entropy(logits, Yb)
print(loss_fast.item(), 'diff:', (loss_fast - loss).item())"""

EX2 = """# backward pass

dlogits = F.softmax(logits, 1)
dlogits[range(n), Yb] -= 1
dlogits /= n

cmp('logits', dlogits, logits) # I can only get approximate to be true, my maxdiff is 6e-9"""

EX3_FORWARD = """# Exercise 3: backprop through batchnorm but all in one go
# to complete this challenge look at the mathematical expression of the output of batchnorm,
# take the derivative w.r.t. its input, simplify the expression, and just write it out

# forward pass

# now:
hpreact_fast = bngain * (hprebn - hprebn.mean(0, keepdim=True)) / torch.sqrt(hprebn.var(0, keepdim=True, unbiased=True) + 1e-5) + bnbias
print('max diff:', (hpreact_fast - hpreact).abs().max())"""

EX3 = """# backward pass

# before we had:
# dbnraw = bngain * dhpreact
# dbndiff = bnvar_inv * dbnraw
# dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)
# dbnvar = (-0.5*(bnvar + 1e-5)**-1.5) * dbnvar_inv
# dbndiff2 = (1.0/(n-1))*torch.ones_like(bndiff2) * dbnvar
# dbndiff += (2*bndiff) * dbndiff2
# dhprebn = dbndiff.clone()
# dbnmeani = (-dbndiff).sum(0)
# dhprebn += 1.0/n * (torch.ones_like(hprebn) * dbnmeani)

# calculate dhprebn given dhpreact (i.e. backprop through the batchnorm)
# (you'll also need to use some of the variables from the forward pass up above)

dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dhpreact.sum(0) - n/(n-1)*bnraw*(dhpreact*bnraw).sum(0))

cmp('hprebn', dhprebn, hprebn) # I can only get approximate to be true, my maxdiff is 9e-10"""

EX4 = """# Exercise 4: putting it all together!
# Train the MLP neural net with your own backward pass

# init
n_embd = 10 # the dimensionality of the character embedding vectors
n_hidden = 200 # the number of neurons in the hidden layer of the MLP

g = torch.Generator().manual_seed(2147483647) # for reproducibility
C  = torch.randn((vocab_size, n_embd),            generator=g)
W1 = torch.randn((n_embd * block_size, n_hidden), generator=g) * (5/3)/((n_embd * block_size)**0.5)
b1 = torch.randn(n_hidden,                        generator=g) * 0.1
W2 = torch.randn((n_hidden, vocab_size),          generator=g) * 0.1
b2 = torch.randn(vocab_size,                      generator=g) * 0.1
bngain = torch.randn((1, n_hidden))*0.1 + 1.0
bnbias = torch.randn((1, n_hidden))*0.1

parameters = [C, W1, b1, W2, b2, bngain, bnbias]
print(sum(p.nelement() for p in parameters)) # number of parameters in total
for p in parameters:
  p.requires_grad = True

# same optimization as last time
max_steps = 200000
batch_size = 32
n = batch_size # convenience
lossi = []

# use this context manager for efficiency once your backward pass is written (TODO)
with torch.no_grad():

  # kick off optimization
  for i in range(max_steps):

    # minibatch construct
    ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
    Xb, Yb = Xtr[ix], Ytr[ix] # batch X,Y

    # forward pass
    emb = C[Xb] # embed the characters into vectors
    embcat = emb.view(emb.shape[0], -1) # concatenate the vectors
    # Linear layer
    hprebn = embcat @ W1 + b1 # hidden layer pre-activation
    # BatchNorm layer
    # -------------------------------------------------------------
    bnmean = hprebn.mean(0, keepdim=True)
    bnvar = hprebn.var(0, keepdim=True, unbiased=True)
    bnvar_inv = (bnvar + 1e-5)**-0.5
    bnraw = (hprebn - bnmean) * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    # -------------------------------------------------------------
    # Non-linearity
    h = torch.tanh(hpreact) # hidden layer
    logits = h @ W2 + b2 # output layer
    loss = F.cross_entropy(logits, Yb) # loss function

    # backward pass
    for p in parameters:
      p.grad = None
    #loss.backward() # use this for correctness comparisons, delete it later!

    # manual backprop! #swole_doge_meme
    # -----------------
    dlogits = F.softmax(logits, 1)
    dlogits[range(n), Yb] -= 1
    dlogits /= n
    # 2nd layer backprop
    dh = dlogits @ W2.T
    dW2 = h.T @ dlogits
    db2 = dlogits.sum(0)
    # tanh
    dhpreact = (1.0 - h**2) * dh
    # batchnorm backprop
    dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
    dbnbias = dhpreact.sum(0, keepdim=True)
    dhprebn = bngain*bnvar_inv/n * (n*dhpreact - dhpreact.sum(0) - n/(n-1)*bnraw*(dhpreact*bnraw).sum(0))
    # 1st layer
    dembcat = dhprebn @ W1.T
    dW1 = embcat.T @ dhprebn
    db1 = dhprebn.sum(0)
    # embedding
    demb = dembcat.view(emb.shape)
    dC = torch.zeros_like(C)
    for k in range(Xb.shape[0]):
      for j in range(Xb.shape[1]):
        ix = Xb[k,j]
        dC[ix] += demb[k,j]
    grads = [dC, dW1, db1, dW2, db2, dbngain, dbnbias]
    # -----------------

    # update
    lr = 0.1 if i < 100000 else 0.01 # step learning rate decay
    for p, grad in zip(parameters, grads):
      #p.data += -lr * p.grad # old way of cheems doge (using PyTorch grad from .backward())
      p.data += -lr * grad # new way of swole doge TODO: enable

    # track stats
    if i % 10000 == 0: # print every once in a while
      print(f'{i:7d}/{max_steps:7d}: {loss.item():.4f}')
    lossi.append(loss.log10().item())"""

AFTER_EX4 = """# calibrate the batch norm at the end of training

with torch.no_grad():
  # pass the training set through
  emb = C[Xtr]
  embcat = emb.view(emb.shape[0], -1)
  hpreact = embcat @ W1 + b1
  # measure the mean/std over the entire training set
  bnmean = hpreact.mean(0, keepdim=True)
  bnvar = hpreact.var(0, keepdim=True, unbiased=True)"""

PLOT = """plt.plot(torch.tensor(lossi).view(-1, 1000).mean(1))"""


def ex1_cell(steps: list[tuple[str, str | None]], header: str = EX1_HEADER, cmp_calls: bool = True) -> str:
    lines = [header] if header else []
    lines += [code for code, _ in steps]
    if cmp_calls:
        lines.append("")
        lines += [f"cmp('{t}', d{t}, {t})" for _, t in steps if t]
    return "\n".join(lines)


def with_mistakes(steps: list[tuple[str, str | None]], edits: dict[str, str]) -> list[tuple[str, str | None]]:
    out = []
    for code, t in steps:
        edited = code
        for old, new in edits.items():
            edited = edited.replace(old, new)
        out.append((edited, t))
    return out


def preamble(seed: int = 2147483647, batch: int = 32) -> list[str]:
    return [IMPORTS, WGET, WORDS, VOCAB, DATASET, CMP, PARAMS.replace("SEED", str(seed)),
            BATCH.replace("BATCH", str(batch)), FORWARD]


def notebook(cells: list[object]) -> nbformat.NotebookNode:
    nb_cells = []
    for i, cell in enumerate(cells):
        if isinstance(cell, tuple) and cell[0] == "md":
            nb_cells.append(new_markdown_cell(cell[1]))
        else:
            code = new_code_cell(cell)
            code.execution_count = i + 1
            nb_cells.append(code)
    nb = new_notebook(cells=nb_cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def write(name: str, nb: nbformat.NotebookNode) -> None:
    for i, cell in enumerate(nb.cells):  # fixed ids: regenerating changes only what really changed
        cell.id = f"{name[:40]}-{i}"
    nbformat.write(nb, str(HERE / f"{name}.ipynb"))


def one_bad_line_fixtures() -> None:
    """Notebooks with one bad line, or one quirk of Jupyter, that must cost only what it touches."""
    # 11. One autograd read ("the formula is right but float noise cascades") and dC left
    #     half-written at the end of the cell: each costs its own gradient only.
    ex1 = with_mistakes(EX1, {"dhpreact = (1.0 - h**2) * dh": "dhpreact = hpreact.grad  # float noise cascades"})
    ex1 = [*ex1[:-1], ("dC =", None)]
    write("autograd_read_and_unfinished_line", notebook([*preamble(), ex1_cell(ex1), EX2_FORWARD, EX2]))

    # 12. Exercise cells indented by four spaces throughout: Jupyter (IPython) runs them.
    indent = lambda text: "\n".join("    " + x if x.strip() else x for x in text.splitlines())  # noqa: E731
    write("indented_cells", notebook([*preamble(), indent(ex1_cell(EX1)), EX2_FORWARD, indent(EX2)]))

    # 13. The batch under the student's own name (yb, from their ytr), a helper of their own called
    #     ix, and len(itos) in a gradient: the grader's batch and data are used, and the data
    #     loading never enters the program.
    imports, wget, words, vocab, dataset, cmp_cell, params, batch, forward = preamble()
    own_data = [dataset.replace("Ytr", "ytr"), batch.replace("Yb", "yb").replace("Ytr", "ytr"),
                forward.replace("Yb", "yb")]
    ex1 = with_mistakes(EX1, {"Yb": "yb", "num_classes=logits.shape[1]": "num_classes=len(itos)"})
    ex1 = [*ex1[:-1], ("ix = Xb.view(-1)  # my own index\ndC = torch.zeros_like(C).index_add_(0, ix, "
                       "demb.view(-1, demb.shape[2]))", "C")]
    write("renamed_batch_and_own_ix", notebook([imports, wget, words, vocab, own_data[0], cmp_cell, params,
                                                *own_data[1:], ex1_cell(ex1), EX2_FORWARD, EX2.replace("Yb", "yb")]))

    # 14. A wrong try standing above the right exercise-1 cell but run after it (execution counts
    #     say so): the kernel, and the student's own cmp, hold the wrong dbnvar; graded as it ran.
    wrong_try = "# Exercise 1, another go at dbnvar\ndbnvar = (0.5*(bnvar + 1e-5)**-1.5) * dbnvar_inv"
    nb = notebook([*preamble(), wrong_try, ex1_cell(EX1, header="# Exercise 1 (continued)"), EX2_FORWARD, EX2])
    code = [c for c in nb.cells if c.cell_type == "code"]
    *setup, wrong, right, ex2_forward, ex2 = code
    for count, cell in enumerate([*setup, right, wrong, ex2_forward, ex2], start=1):
        cell.execution_count = count
    write("ran_out_of_order", nb)


def main() -> None:
    # 1. The lecture's notebook, all four exercises right.
    write("lecture_all_correct", notebook([*preamble(), ex1_cell(EX1), EX2_FORWARD, EX2, EX3_FORWARD, EX3, EX4,
                                           AFTER_EX4, PLOT]))

    # 2. Exercise 1 with a sign slip and a missing branch; exercise 2 forgets 1/n; 3 right;
    #    exercise 4's backward pass has db2 summed over the wrong dimension.
    ex1 = with_mistakes(EX1, {"dprobs = (1.0 / probs)": "dprobs = -(1.0 / probs)",
                              "dbndiff += (2*bndiff) * dbndiff2": "dbndiff = dbndiff"})
    write("lecture_mixed", notebook([*preamble(), ex1_cell(ex1), EX2_FORWARD, EX2.replace("dlogits /= n\n", ""),
                                     EX3_FORWARD, EX3, EX4.replace("db2 = dlogits.sum(0)", "db2 = dlogits.sum(1)")]))

    # 3. Exercise 1 spread over several cells with markdown between; Bessel slip in dbndiff2.
    ex1 = with_mistakes(EX1, {"(1.0/(n-1))*torch.ones_like": "(1.0/n)*torch.ones_like"})
    parts = [ex1[:8], ex1[8:14], ex1[14:25], ex1[25:]]
    cells: list[object] = [*preamble(), ("md", "## Exercise 1\nBackprop through everything, step by step.")]
    for i, part in enumerate(parts):
        cells += [("md", f"### Part {i + 1}"), ex1_cell(part, header="", cmp_calls=False),
                  "\n".join(f"cmp('{t}', d{t}, {t})" for _, t in part if t)]
    cells += [("md", "## Exercise 2"), EX2, ("md", "## Exercise 3"), EX3]
    write("spread_over_cells", notebook(cells))

    # 4. Helpers and imports from earlier cells; dC not done yet.
    helpers = ("import math\n\ndef sum_to(grad, like):\n  # sum a gradient back down to the shape of `like`\n"
               "  dims = [i for i, s in enumerate(like.shape) if s == 1 and grad.shape[i] != 1]\n"
               "  return grad.sum(dims, keepdim=True) if dims else grad")
    ex1 = with_mistakes(EX1, {"dbngain = (bnraw * dhpreact).sum(0, keepdim=True)": "dbngain = sum_to(bnraw * dhpreact, bngain)",
                              "dbnvar = (-0.5*(bnvar + 1e-5)**-1.5)": "dbnvar = (-0.5/math.pow(1, 2)*(bnvar + 1e-5)**-1.5)"})
    ex1 = [s for s in ex1 if s[1] != "C"]
    write("helpers_in_earlier_cells", notebook([*preamble()[:6], helpers, *preamble()[6:], ex1_cell(ex1)]))

    # 5. Renamed gradients, told apart by the cmp calls.
    ex1 = with_mistakes(EX1, {"dcounts_sum_inv": "dcsi", "dnorm_logits": "dnl"})
    cell = ex1_cell([(c, t) for c, t in ex1]).replace("cmp('counts_sum_inv', dcounts_sum_inv,",
                                                       "cmp('counts_sum_inv', dcsi,").replace(
        "cmp('norm_logits', dnorm_logits,", "cmp('norm_logits', dnl,")
    write("renamed_gradients", notebook([*preamble(), cell, EX2]))

    # 6. Magics, shell lines, prints and plots inside the exercise cells.
    ex1 = ex1_cell(EX1) + "\nprint('exercise 1 done')\nplt.figure(figsize=(4,4)); plt.imshow(dh.abs() > 0.99, cmap='gray')"
    ex2 = "%%time\n" + EX2 + "\n!echo done"
    write("magics_plots_prints", notebook([*preamble(), ex1, EX2_FORWARD, ex2, "%%bash\necho not python", EX3]))

    # 7. No "Exercise" markers anywhere: sections from what the cells compute. No exercise 4.
    strip = lambda text: "\n".join(x for x in text.splitlines() if "Exercise" not in x)  # noqa: E731
    ex1 = with_mistakes(EX1, {"dW2 = h.T @ dlogits": "dW2 = (dlogits.T @ h)"})
    write("no_markers", notebook([*preamble(), ex1_cell(ex1, header=""), strip(EX2_FORWARD), EX2,
                                  strip(EX3_FORWARD), EX3]))

    # 8. Commented-out attempts, an abandoned wrong try run before the right one, stale
    #    error outputs, cells run out of order.
    old = "# first try, wrong:\n# dlogprobs = -1.0 / n\n# dprobs = probs * dlogprobs\n" + ex1_cell(EX1[:2], header="")
    wrong_try = "dbnvar = (0.5*(bnvar + 1e-5)**-1.5) * dbnvar_inv  # sign?"
    nb = notebook([*preamble(), EX1_HEADER + old, wrong_try, ex1_cell(EX1[2:], header=""), EX2])
    nb.cells[-3].outputs = [new_output("error", ename="RuntimeError", evalue="stale: shapes do not match",
                                       traceback=["RuntimeError: stale"])]
    # Execution counts tell that story: the set-up in order, then the first attempt, the wrong
    # try, exercise 2 (out of order: before exercise 1 was finished, which it does not need)
    # and last the right exercise-1 cell, whose dbnvar replaced the wrong one in the kernel.
    code = [c for c in nb.cells if c.cell_type == "code"]
    *setup, first, wrong, right, ex2 = code
    for count, cell in enumerate([*setup, first, wrong, ex2, right], start=1):
        cell.execution_count = count
    write("commented_out_and_stale", nb)

    # 9. The student changed the seed and the batch size: the grader's own case is used.
    write("changed_seed_and_batch", notebook([*preamble(seed=42, batch=64), ex1_cell(EX1), EX2, EX3]))

    one_bad_line_fixtures()

    # 10. The same as 2, as one script with # %% cells.
    nb = nbformat.read(str(HERE / "lecture_mixed.ipynb"), as_version=4)
    script = "\n\n".join(f"# %%\n{c.source}" if c.cell_type == "code" else
                         "# %% [markdown]\n" + "\n".join(f"# {x}" for x in c.source.splitlines()) for c in nb.cells)
    script = "\n".join("# " + x if x.lstrip().startswith(("%", "!")) else x for x in script.splitlines())
    (HERE / "lecture_mixed_transcript.py").write_text(script + "\n")
    print(json.dumps(sorted(p.name for p in HERE.iterdir() if p.suffix in (".ipynb", ".py"))))


if __name__ == "__main__":
    main()
