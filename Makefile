# Thin wrapper over CMake: the two commands the README names, plus the usual
# build targets. Everything real lives in CMakeLists.txt.
BUILD_DIR   ?= build
BUILD_TYPE  ?= RelWithDebInfo
FERRY_WERROR ?= OFF
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps test-deps configure build test test-sanitize demo bench fuzz clean format

all: build

deps:
	@.ci/install-deps.sh

# Test-only tools from the npm registry (Prism for the contract tier).
test-deps:
	@tests/contract/install.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DFERRY_WERROR=$(FERRY_WERROR) $(CMAKE_FLAGS)

configure: deps $(BUILD_DIR)/CMakeCache.txt

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build test-deps
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 600

# The same suites on an AddressSanitizer + UBSan build: any leak, overflow
# or undefined behaviour in the daemon or a test fails the run.
SAN_BUILD_DIR ?= build-sanitize
test-sanitize: deps
	cmake -S . -B $(SAN_BUILD_DIR) -DCMAKE_BUILD_TYPE=Debug -DFERRY_WERROR=$(FERRY_WERROR) "-DFERRY_SANITIZE=address;undefined" $(CMAKE_FLAGS)
	cmake --build $(SAN_BUILD_DIR) -j $(JOBS)
	cd $(SAN_BUILD_DIR) && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -j $(JOBS) --timeout 600

# Every benchmark at full size (about 15 minutes); CTest runs them small (label bench).
bench: build
	python3 bench/run_all.py --build-dir $(BUILD_DIR)

# libFuzzer targets (clang, ASan + UBSan), FUZZ_TIME seconds each; CTest
# replays their corpora on every build (label fuzz) without clang.
FUZZ_BUILD_DIR ?= build-fuzz
FUZZ_TIME ?= 20
fuzz:
	@.ci/install-deps.sh clang-14 libclang-rt-14-dev
	tests/fuzz/run_fuzz.sh $(FUZZ_BUILD_DIR) $(FUZZ_TIME)

demo: build
	python3 tests/sim/demo.py --build-dir $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD_DIR) $(SAN_BUILD_DIR)
