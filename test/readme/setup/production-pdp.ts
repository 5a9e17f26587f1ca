import { execFileSync } from "node:child_process";

// The block reads a CA certificate from its working folder. Neither client connects before it is asked something.
execFileSync("openssl", [
  "req",
  "-x509",
  "-newkey",
  "ec",
  "-pkeyopt",
  "ec_paramgen_curve:prime256v1",
  "-nodes",
  "-keyout",
  "cerbos-ca.key",
  "-out",
  "cerbos-ca.pem",
  "-days",
  "1",
  "-subj",
  "/CN=readme CA",
]);
