/* fuzz_broker_config.c — the broker's configuration parser on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "broker/internal.h"
#include "common/config.h"
#include "crypto/secret.h"

/* Inputs larger than this are skipped: real configs are small. */
#define FUZZ_INPUT_MAX (256u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int initialised;
	struct broker_config cfg;
	struct lk_error err;
	json_t *root;

	if (!initialised) {
		if (lk_secret_init() < 0)
			abort();
		initialised = 1;
	}
	if (size > FUZZ_INPUT_MAX)
		return 0;
	lk_error_clear(&err);
	root = lk_cfg_load_text("fuzz.json", (const char *)data, size, &err);
	if (root == NULL)
		return 0;
	if (broker_config_parse(&cfg, "fuzz.json", root, &err) == 0)
		broker_config_clear(&cfg);
	json_decref(root);
	return 0;
}
