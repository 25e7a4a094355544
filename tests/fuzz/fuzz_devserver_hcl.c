/* fuzz_devserver_hcl.c — the HCL policy subset of `latchkey dev` (devserver/policy.c). */
#include <stddef.h>
#include <stdint.h>

#include "devserver/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = { "", "secret/data/app/x", "secret/metadata/app/",
					     "sys/leases/renew", "a/b/c/d" };
	struct dev_policy *p = NULL;
	struct lk_error err;

	if (dev_policy_parse((const char *)data, size, &p, &err) < 0)
		return 0;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		const struct dev_policy *set[1] = { p };

		(void)dev_policy_caps(set, 1, paths[i]);
		for (size_t k = 0; k < p->n; k++) {
			(void)dev_policy_match(p->rules[k].pattern, paths[i]);
			(void)dev_policy_match(p->rules[k].pattern, p->rules[k].pattern);
			if (k > 0)
				(void)dev_policy_priority(p->rules[k].pattern, p->rules[k - 1].pattern);
		}
	}
	dev_policy_free(p);
	return 0;
}
