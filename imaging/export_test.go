package imaging

// LiveObjects exposes the count of live libvips objects to the external tests.
var LiveObjects = liveObjects

// VectorsEnabled exposes whether libvips would compile SIMD code at run time.
var VectorsEnabled = vectorsEnabled
