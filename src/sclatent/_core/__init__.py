"""Private PyTorch core shared by every sclatent model.

Nothing in this package knows about AnnData: it sees arrays and tensors only.
"""
