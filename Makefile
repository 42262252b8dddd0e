# vizmesh - thin wrapper around CMake; `make run` and `make test` are the two commands.
# SPDX-License-Identifier: MPL-2.0
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CTEST_JOBS ?= 2
CONFIG     ?= configs/mesh.cfg

.PHONY: all deps test-deps build run test test-fast test-asan test-valgrind bench clean format

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

format:
	clang-format -i common/*.[ch] services/*/*.[ch] supervisor/*.[ch] tests/*/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
