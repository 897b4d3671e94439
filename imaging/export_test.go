package imaging

// LiveObjects exposes the count of live libvips objects to the external tests.
var LiveObjects = liveObjects
