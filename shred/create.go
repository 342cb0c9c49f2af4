package shred

// CreateWithSecret creates a keyring at path whose pseudonyms derive from
// secret, so that an id gets the same pseudonym in every keyring made with
// it. It is for sandboxes, whose runs must repeat (a split's choice
// depends on the pseudonym); a real keyring's secret is random (Open).
// Open opens the keyring; a keyring already at path is left as it is.
func CreateWithSecret(path string, secret [32]byte) error { return createFile(path, &secret) }
