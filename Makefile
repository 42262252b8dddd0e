# vizmesh - thin wrapper around CMake; `make run` and `make test` are the two commands.
# SPDX-License-Identifier: MPL-2.0
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CTEST_JOBS ?= 2
CONFIG     ?= configs/mesh.cfg
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= envelope batch json jwt jwks config gateway_path gateway_routes ratelimit

.PHONY: all deps test-deps build run test test-fast test-asan test-valgrind bench fuzz clean format

all: build

deps:
	@bash .ci/install-deps

test-deps:
	@bash .ci/install-deps --test
	@for d in tests/peers tests/k8s; do \
	    (cd $$d && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || \
	        npm ci --no-audit --no-fund --loglevel=error; }) || exit 1; \
	done

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Start Redis, the broker and every daemon under the supervisor, on the embedded defaults.
run: build
	$(BUILD)/bin/vz-supervisor --config $(CONFIG)

# Every test: the normal build, the unit tests under valgrind, then the
# ASan+UBSan build of the whole suite.
test: test-deps build
	ctest --test-dir $(BUILD) -j $(CTEST_JOBS) --output-on-failure
	$(MAKE) --no-print-directory test-valgrind
	$(MAKE) --no-print-directory test-asan

test-fast: test-deps build
	ctest --test-dir $(BUILD) -j $(CTEST_JOBS) --output-on-failure

# Daemons' logs are judged by the tests themselves (harness.c: every stop
# and the teardown; logcheck.sh: the supervisor's state dir); a report that
# still reached a test's output fails the pass here.
test-asan: test-deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVZ_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --test-dir $(ASAN_BUILD) -j $(CTEST_JOBS) --output-on-failure -LE noasan
	@! grep -nE 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' \
	    $(ASAN_BUILD)/Testing/Temporary/LastTest.log || \
	    { echo "test-asan: sanitizer reports in the test output (above)"; exit 1; }

# Unit tests under valgrind: any memory error or definite leak fails.
test-valgrind: build
	@mkdir -p $(BUILD)/valgrind
	@for t in $(BUILD)/bin/test_*; do \
	    [ -x "$$t" ] || continue; \
	    log=$(BUILD)/valgrind/$$(basename $$t).log; \
	    echo "valgrind $$t"; \
	    valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	        $$t >$$log 2>&1 || { cat $$log; exit 1; }; \
	done; echo "valgrind: all unit tests clean"

bench: test-deps build
	bash tests/bench/run.sh $(BUILD)

# Every libFuzzer target for FUZZ_SECONDS on a copy of its corpus (clang,
# ASan+UBSan; tests/fuzz/README.md). A crash, a sanitizer report or a broken
# property fails the target and leaves the input in
# $(FUZZ_BUILD)/fuzz-work/<target>/; the other targets still run.
fuzz:
	@bash .ci/install-deps --fuzz
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DVZ_FUZZ=ON -DVZ_SANITIZE=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz
	@failed=; for t in $(FUZZ_TARGETS); do \
	    work=$(FUZZ_BUILD)/fuzz-work/$$t; rm -rf $$work; mkdir -p $$work/corpus; \
	    cp tests/fuzz/corpus/$$t/* $$work/corpus/ || exit 1; \
	    echo "fuzz $$t: $(FUZZ_SECONDS) s"; \
	    if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	        $(FUZZ_BUILD)/bin/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -print_final_stats=1 -artifact_prefix=$$work/ $$work/corpus >$$work/log 2>&1; then \
	        grep -E '^stat::(number_of_executed_units|peak_rss_mb)' $$work/log; \
	    else \
	        grep -E -A12 'ERROR|runtime error|property does not hold' $$work/log | head -n 30; \
	        echo "fuzz $$t: FAILED, input in $$work/"; failed="$$failed $$t"; \
	    fi; \
	done; [ -z "$$failed" ] || { echo "fuzz: findings in$$failed"; exit 1; }; \
	echo "fuzz: no findings in $(FUZZ_TARGETS)"

format:
	clang-format -i common/*.[ch] services/*/*.[ch] supervisor/*.[ch] tests/*/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
