# SystemExit is a builtin: no import needed.
raise SystemExit(0)
dlogits = F.softmax(logits, 1)
