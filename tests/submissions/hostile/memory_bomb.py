# Allocate without bound.
hoard = []
while True:
    hoard.append(torch.ones(1 << 24))
