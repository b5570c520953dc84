"""The course: course.yaml, the data set, the forward graphs, the cases and their truths read; its notebooks written."""
