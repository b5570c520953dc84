"""Reading a submission: a .py or a notebook, into a checked Program of statements."""
