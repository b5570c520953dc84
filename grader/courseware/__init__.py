"""Reading a course: course.yaml, the data set, the forward graphs, the cases and their truths."""
