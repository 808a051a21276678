"""Why a deal scores as it does, in a seller's words: the factors behind each score
(`factors`), their sentences (`sentences`) and the words those use (`wording`)."""
