// The worker threads of orthornn/train when the package runs from its TypeScript sources
// (tests, benchmarks, a checkout under tsx): loads tsx's require hook, then the .ts entry
// given as the worker's first argument. The compiled package never uses this file.
require('tsx/cjs');
require(process.argv[2]);
