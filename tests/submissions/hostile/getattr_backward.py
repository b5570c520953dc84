# Reach .backward without writing it.
step = getattr(loss, "back" + "ward")
step()
dlogits = getattr(logits, "gr" + "ad")
