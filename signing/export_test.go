package signing

// ParseVariant is parseVariant for the tests of package signing_test.
func ParseVariant(s string) (Variant, error) {
	v, ok := parseVariant(s)
	if !ok {
		return Variant{}, ErrMalformed
	}
	return v, nil
}
