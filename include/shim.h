/*
 * res_stasis_broadcast_rs: C shim prototypes.
 *
 * Every function here exists because Rust cannot call the Asterisk construct
 * directly: a macro (ast_channel_lock, ast_module_ref, ast_register_application_xml),
 * a static inline (ast_tvnow), or a call that needs this module's AST_MODULE_SELF.
 * All names start with sbshim_. No logic lives here.
 */
#ifndef RES_STASIS_BROADCAST_RS_SHIM_H
#define RES_STASIS_BROADCAST_RS_SHIM_H

#include <stddef.h>

struct ast_channel;
struct ast_json;
struct ast_cli_entry;
struct ast_module;
struct ast_config;
struct ast_str;

/* Module identity: also what keeps the shim's object (and the AST_MODULE_INFO
 * constructor in it) linked into the shared object. */
struct ast_module *sbshim_module_self(void);
void sbshim_module_ref(void);
void sbshim_module_unref(void);

/* Logging: the message is always passed through "%s". */
void sbshim_log(int level, const char *file, int line, const char *function, const char *message);
void sbshim_verb(int level, const char *message);
int sbshim_debug_enabled(int level);
int sbshim_log_level_error(void);
int sbshim_log_level_warning(void);
int sbshim_log_level_notice(void);
int sbshim_log_level_debug(void);

/* Memory owned by Asterisk's allocator. */
char *sbshim_strdup(const char *s);
void sbshim_free(void *p);

/* Channels. */
void sbshim_channel_ref(struct ast_channel *chan);
void sbshim_channel_unref(struct ast_channel *chan);
void sbshim_channel_lock(struct ast_channel *chan);
void sbshim_channel_unlock(struct ast_channel *chan);
/* Copies caller id number and dialplan extension with the channel locked. */
void sbshim_channel_caller_and_exten(struct ast_channel *chan,
	char *caller, size_t caller_len, char *exten, size_t exten_len);
/* Queues a null frame: wakes a thread blocked in ast_waitfor() on the channel. */
int sbshim_channel_wake(struct ast_channel *chan);

/* Dialplan application registration. */
int sbshim_register_application(const char *name, int (*execute)(struct ast_channel *, const char *));

/* Stasis applications: names as one buffer of NUL-terminated strings
 * (caller frees with sbshim_free); *count receives how many. */
char *sbshim_stasis_app_names(size_t *count, size_t *total_len);
int sbshim_stasis_app_is_registered(const char *name);

/* JSON. */
struct ast_json *sbshim_json_timestamp_now(void);
struct ast_json *sbshim_channel_snapshot_json(const char *uniqueid);

/* CLI. */
int sbshim_cli_register_multiple(struct ast_cli_entry *entries, int count);
void sbshim_cli_print(int fd, const char *text);

/* Appends text to a dynamic string (as "%s"). */
void sbshim_str_append(struct ast_str **out, const char *text);

/* Configuration files: ast_config_load() (a macro naming AST_MODULE), with
 * its three sentinel results turned into a status. */
enum sbshim_config_status {
	SBSHIM_CONFIG_LOADED = 0,
	SBSHIM_CONFIG_MISSING = 1,
	SBSHIM_CONFIG_INVALID = 2,
};
struct ast_config *sbshim_config_load(const char *filename, int *status);

#endif
