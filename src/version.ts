/** This package's version, reported as the tracer version. A test keeps it equal to package.json's. */
export const version = "0.1.0";
