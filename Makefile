# `sam build` runs one target of this file per function of template.yaml (`BuildMethod:
# makefile`), in a copy of the checkout: each builds its binary for arm64 with the `lambda` profile
# of Cargo.toml (fat LTO, one codegen unit, opt-level "z": 9.8 MB for send-event; BENCHMARKS.md)
# and puts it in ARTIFACTS_DIR as `bootstrap`. The SAM CLI's own rust-cargolambda builder runs
# `cargo lambda build --release`, which is what `serve` is built with and to which cargo-lambda
# adds panic = "abort" (a panic would kill the function instead of answering 500): hence this file.
# Needs cargo-lambda and zig (docs/aws.md).

CARGO_LAMBDA ?= cargo lambda

build-RegisterEventFunction: BIN = register-event
build-SendEventFunction: BIN = send-event
build-SendEventsFunction: BIN = send-events
build-GetSchemaFunction: BIN = get-schema
build-VersionsFunction: BIN = versions
build-CompatibilityFunction: BIN = compatibility
build-CheckCompatibilityFunction: BIN = check-compatibility
build-ValidateFunction: BIN = validate
build-ListEventsFunction: BIN = list-events
build-RejectedFunction: BIN = rejected
build-ReplayFunction: BIN = replay

# `--package`, not `--bin`: cargo resolves features for the packages it selects, and `--bin`
# alone selects every default member (the CLI's and the tests' SQLite came with it: +1.6 MB).
build-%:
	$(CARGO_LAMBDA) build --profile lambda --arm64 --locked --package $(BIN) \
		--lambda-dir "$(ARTIFACTS_DIR)" --flatten $(BIN)
