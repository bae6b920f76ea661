# mailgate-notify — the two set-up commands are `make run` and `make test`.
CARGO ?= cargo
BIN := target/release/mailgate-notify

.PHONY: run build test rig lint fmt bench bench-e2e soak fuzz fixtures clean

## run: build the release binary and run the embedded demo (no broker or relay needed)
run: build
	./$(BIN) demo

build:
	$(CARGO) build --release

## test: install the rig (Tansu, smtp-sink, aiosmtpd) and run every unit and integration test
test: rig
	$(CARGO) test --all-targets --no-fail-fast

## rig: install what the integration tests need (idempotent)
rig:
	bash tests/rig/install.sh

## lint: formatting check and clippy with warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: criterion benches
bench:
	$(CARGO) bench

## bench-e2e: end-to-end load benchmark on the rig with same-run ceilings (BENCHMARKS.md);
## options via BENCH_E2E_ARGS, e.g. BENCH_E2E_ARGS="--count 50000 --sessions 16"
bench-e2e: rig
	$(CARGO) build --release --bins
	python3 benches/e2e/run.py $(BENCH_E2E_ARGS)

## soak: the full pipeline on the rig under random faults, with an auditor (not part of test);
## SOAK_DURATION (default 10m), SOAK_SEED (replay a run), SOAK_POISON (default 1000), SOAK_RSS_LIMIT_MIB (256)
soak: rig
	$(CARGO) test --release --test soak -- --ignored --nocapture

## fixtures: regenerate the single-object Avro fixtures from their JSON twins
fixtures:
	$(CARGO) build
	for f in application_event bounce_event scan_verdict; do \
	  ./target/debug/mailgate-notify encode --format avro \
	    --file tests/fixtures/events/$$f.json --out tests/fixtures/events/$$f.avro || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf .cache/rig outbox

## fuzz: run each cargo-fuzz target for FUZZ_TIME seconds, one after another (RELIABILITY.md)
# Stable toolchain: RUSTC_BOOTSTRAP=1 admits the -Z flags cargo-fuzz passes; `-s none` (no
# AddressSanitizer) because our code and its decoders are safe Rust, and the ASan build of
# librdkafka's C code would only slow every run. New inputs go to fuzz/corpus (not committed);
# the seeds in fuzz/seeds are read too.
FUZZ_TIME ?= 600
FUZZ_TARGETS ?= decode_json decode_single_object decode_confluent render config
fuzz:
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t && \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s none -O $$t $(CURDIR)/fuzz/corpus/$$t $(CURDIR)/fuzz/seeds/$$t \
	    -- -max_total_time=$(FUZZ_TIME) -timeout=10 || exit 1; \
	done
