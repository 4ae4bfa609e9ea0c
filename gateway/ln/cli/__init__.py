"""`sgrid channel`, `sgrid pay` and `sgrid invoice`: the command-line side of gateway.ln."""
