"""Validates the OpenAPI document (OpenAPI 3.1) that `doorstep openapi` prints: 0 errors."""
import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator

doc = json.load(open(sys.argv[1]))
errors = list(OpenAPIV31SpecValidator(doc).iter_errors())
for error in errors[:50]:
    path = "/".join(str(p) for p in error.absolute_path)
    print(f"{path}: {error.message}")
print(f"openapi: {len(errors)} errors")
sys.exit(1 if errors else 0)
