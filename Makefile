# latchkey — one binary, `latchkey`, built from the module folders below.
# Targets: all (default), check, san, tsan, demo, demo-sync, demo-db, bench, bench-sync, fuzz,
# fuzz-ci, soak, install, clean.

PREFIX  ?= /usr/local
BUILD   ?= build
CC      ?= cc
PKG_CONFIG ?= pkg-config

MODULES ?= common crypto http manifest sealing vault k8s broker sync devserver
PKGS    := libcurl jansson libsodium openssl yaml-0.1 libpq
TESTPKG := check
# The fake API server of the tests serves HTTPS with libmicrohttpd; the product does not use it.
FAKE_PKG := libmicrohttpd

# A fresh machine: install the missing Debian packages before anything needs them.
ifeq ($(filter clean,$(MAKECMDGOALS)),)
ifneq ($(shell $(PKG_CONFIG) --exists $(PKGS) $(FAKE_PKG) $(TESTPKG) 2>/dev/null && echo ok),ok)
$(info latchkey: some libraries are missing; running tools/deps.sh)
DEPS_STATUS := $(shell tools/deps.sh >&2 && echo ok)
ifneq ($(DEPS_STATUS),ok)
$(error tools/deps.sh could not install the build dependencies)
endif
endif
endif

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS))
# libpq is only compiled against: `latchkey dev` loads it with dlopen (devserver/pg.c), so
# the broker and the controller never map it.
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(filter-out libpq,$(PKGS))) -lpthread
FAKE_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(FAKE_PKG))
FAKE_LIBS   := $(shell $(PKG_CONFIG) --libs $(FAKE_PKG))
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(TESTPKG))
# Tests link libpq themselves: check_database logs in with it as an application would.
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs $(TESTPKG) libpq)

WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter
HARDEN  := -fstack-protector-strong -fPIE
LDHARDEN := -pie -Wl,-z,relro,-z,now
ifeq ($(SAN),1)
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDSAN   := -fsanitize=address,undefined
else ifeq ($(TSAN),1)
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
LDSAN   := -fsanitize=thread
else
OPT     := -O2 -g -D_FORTIFY_SOURCE=2
LDSAN   :=
endif
CFLAGS  ?=
LDFLAGS ?=
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(HARDEN) -I. $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
ALL_LDFLAGS := $(LDHARDEN) $(LDSAN) $(LDFLAGS)

CLI_LIB  ?= $(filter-out cli/main.c,$(wildcard cli/*.c))
LIB_SRC  := $(foreach m,$(MODULES),$(wildcard $(m)/*.c)) $(CLI_LIB)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/liblatchkey.a
BIN      := $(BUILD)/latchkey

UNIT_SRC := $(wildcard tests/unit/check_*.c)
INTEG_SRC := $(wildcard tests/integration/check_*.c)
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/obj/%.o)
FAKE_SRC := $(wildcard tests/fakes/*.c)
FAKE_BIN := $(if $(FAKE_SRC),$(BUILD)/fake-apiserver)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
BENCH_SRC := $(wildcard tests/bench/*.c)
TEST_BINS := $(UNIT_SRC:tests/%.c=$(BUILD)/tests/%) $(INTEG_SRC:tests/%.c=$(BUILD)/tests/%)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz-replay/%)
# Checks of the tree itself (the module graph): scripts, run as they are.
LINT := $(wildcard tests/lint/check_*.sh)

.PHONY: all check san tsan demo demo-sync demo-db bench bench-sync fuzz fuzz-ci soak install clean tests
.DELETE_ON_ERROR:
.SECONDARY: $(TESTLIB_OBJ)

all: $(BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/obj/cli/main.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: tests/%.c $(LIB) $(TESTLIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itests/lib $(ALL_LDFLAGS) -o $@ $< $(TESTLIB_OBJ) $(LIB) $(CHECK_LIBS) $(PKG_LIBS)

$(BUILD)/fake-apiserver: $(FAKE_SRC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(FAKE_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(FAKE_LIBS)

# Every fuzz target also builds with a plain driver that replays its corpus: `make check`
# runs the seeds and the crashes found so far, `make fuzz` explores with libFuzzer.
$(BUILD)/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< tests/fuzz/replay.c $(LIB) $(PKG_LIBS)

tests: $(BIN) $(TEST_BINS) $(FAKE_BIN) $(FUZZ_REPLAY)

check: tests
	@LATCHKEY_BIN=$(abspath $(BIN)) FAKE_APISERVER=$(abspath $(FAKE_BIN)) BUILD=$(BUILD) \
		tests/run.sh $(LINT) $(TEST_BINS) $(FUZZ_REPLAY)

san:
	$(MAKE) BUILD=build-san SAN=1 check

# ThreadSanitizer over the suites with threads of their own: the HTTP server and the broker.
TSAN_TESTS := tests/unit/check_httpd tests/unit/check_broker tests/integration/check_broker \
	tests/integration/check_broker_reload
tsan:
	$(MAKE) BUILD=build-tsan TSAN=1 build-tsan/latchkey $(TSAN_TESTS:%=build-tsan/%)
	@LATCHKEY_BIN=$(abspath build-tsan/latchkey) BUILD=build-tsan \
		TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$(abspath tests/tsan.supp) $(TSAN_OPTIONS)" \
		tests/run.sh $(TSAN_TESTS:%=build-tsan/%)

demo: $(BIN)
	@tools/demo.sh $(abspath $(BIN))

demo-sync: $(BIN) $(FAKE_BIN)
	@tools/demo-sync.sh $(abspath $(BIN)) $(abspath $(FAKE_BIN))

demo-db: $(BIN)
	@tools/demo-db.sh $(abspath $(BIN))

BENCH_BINS := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

bench: $(BIN) $(BENCH_BINS) $(FAKE_BIN)
	@tools/deps.sh --dev
	@BUILD=$(BUILD) tools/bench.sh $(abspath $(BIN)) $(abspath $(BUILD)/bench)
	@tools/bench-sync.sh $(abspath $(BIN)) $(abspath $(FAKE_BIN)) $(abspath $(BUILD)/bench)

bench-sync: $(BIN) $(BUILD)/bench/sync_load $(BUILD)/bench/bench_seal $(FAKE_BIN)
	@tools/bench-sync.sh $(abspath $(BIN)) $(abspath $(FAKE_BIN)) $(abspath $(BUILD)/bench)

$(BUILD)/bench/%: tests/bench/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS)

# The memory floor of a libcurl client: linked with libcurl and nothing else.
$(BUILD)/bench/curl_floor: tests/bench/curl_floor.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(shell $(PKG_CONFIG) --libs libcurl)

FUZZ_SECONDS ?= 60
fuzz:
	@tools/deps.sh --dev
	@tools/fuzz.sh $(FUZZ_SECONDS)

# CI: every fuzz target for 30 s under ASan and UBSan; a crash fails the build.
fuzz-ci:
	@tools/deps.sh --dev
	@FUZZ_JOBS=2 tools/fuzz.sh 30

# The long fault soak, opt-in: LATCHKEY_SOAK_SECONDS (default 600) of short TTLs and
# faults against latchkey dev, then the abuse and crash suites at their long settings.
SOAK_SECONDS ?= 600
soak: $(BIN) $(BUILD)/tests/integration/check_broker_faults $(BUILD)/tests/integration/check_broker_abuse $(BUILD)/tests/integration/check_broker_crash
	@LATCHKEY_BIN=$(abspath $(BIN)) BUILD=$(BUILD) LATCHKEY_SOAK_SECONDS=$(SOAK_SECONDS) \
		LATCHKEY_CRASH_CYCLES=$${LATCHKEY_CRASH_CYCLES:-100} TEST_TIMEOUT=$$(( $(SOAK_SECONDS) + 900 )) \
		CK_DEFAULT_TIMEOUT=$$(( $(SOAK_SECONDS) + 600 )) \
		tests/run.sh $(BUILD)/tests/integration/check_broker_faults \
		$(BUILD)/tests/integration/check_broker_abuse $(BUILD)/tests/integration/check_broker_crash

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/latchkey

clean:
	rm -rf build build-san build-tsan build-fuzz

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/cli/main.d
