"""Schemathesis hooks of the admin API's contract tests (tests/contract/schemathesis.toml):
how to send the bodies that are not JSON, so those operations are fuzzed too."""
import schemathesis

# The push certificate as PEM text.
schemathesis.serializer.alias("application/x-pem-file", "text/plain")
# DER certificates, S/MIME server tokens and binary property lists, as bytes.
schemathesis.serializer.alias(
    ["application/pkix-cert", "application/pkcs7-mime", "application/x-apple-plist"],
    "application/octet-stream",
)
