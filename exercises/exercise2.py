# Exercise 2: cross-entropy backward in one go.
#
# The forward pass of exercise 1 is defined here under the same names. Its last
# eight lines, from logits to loss, are what F.cross_entropy(logits, Yb) computes.
# Write dlogits, the gradient of the loss with respect to logits, in one go: from
# logits and Yb alone, not through dlogprobs, dprobs, ... Check with:
#
#     ninja-grade exercise2

# loss = F.cross_entropy(logits, Yb)
# TODO: work out d loss / d logits[i, j] on paper: softmax appears, and so does Yb.
dlogits = None  # (32, 27)
