package api

import _ "embed"

// OpenAPI is the API's OpenAPI 3 document (YAML), served on
// /v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
