"""`kubectl bookstore`: a kubectl plugin that summarizes a Bookstore and explains what is wrong."""
