/* config.h — copying a vault configuration (internal to vault/). */
#ifndef LK_VAULT_CONFIG_H
#define LK_VAULT_CONFIG_H

#include "vault/vault.h"

/* A deep copy of src into dst (dst initialised here). Returns 0 or -ENOMEM (dst then
 * cleared). */
int lk_vault_config_copy(struct lk_vault_config *dst, const struct lk_vault_config *src);

#endif
