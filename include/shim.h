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
struct ao2_container;

/* Module identity: also what keeps the shim's object (and the AST_MODULE_INFO
 * constructor in it) linked into the shared object. */
struct ast_module *sbshim_module_self(void);
void sbshim_module_ref(void);
void sbshim_module_unref(void);
/* Runs fn(data) if the module `name` (e.g. "res_prometheus.so") is running,
 * i.e. loaded and not declined, while the loader's module list is locked:
 * the module cannot start unloading before fn returns. Returns whether fn
 * ran. Takes the module-list lock: for load/reload/unload, not per call. */
int sbshim_with_running_module(const char *name, void (*fn)(void *), void *data);

/* Logging: the message is always passed through "%s". */
void sbshim_log(int level, const char *file, int line, const char *function, const char *message);
/* The first `length` bytes of `text` (no NUL needed), as "%.*s". */
void sbshim_log_text(int level, const char *file, int line, const char *function, const char *text, int length);
/* `format` holds exactly two "%.*s" (and ends in "\n"): the first
 * `first_length` bytes of `first`, then of `second`. */
void sbshim_verb_two(int level, const char *format, const char *first, int first_length,
	const char *second, int second_length);
void sbshim_verb(int level, const char *message);
int sbshim_verb_enabled(int level);
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
/* The caller id number and the dialplan extension ("" when unset) as new
 * JSON strings (NULL when out of memory), read under the channel lock. */
void sbshim_channel_caller_and_exten_json(struct ast_channel *chan,
	struct ast_json **caller, struct ast_json **exten);
/* Copy the channel's unique id and name under one hold of the channel lock
 * (a masquerade changes both): each into its buffer, NUL-terminated, if it
 * fits, else that buffer is left alone. Their full lengths go to *uniqueid_length
 * and *name_length, so a caller whose buffer was too small knows, and retries. */
void sbshim_channel_copy_ids(struct ast_channel *chan,
	char *uniqueid, size_t uniqueid_size, size_t *uniqueid_length,
	char *name, size_t name_size, size_t *name_length);
/* A new reference to the channel with this uniqueid, or NULL. Uses
 * ast_channel_get_by_uniqueid() where the headers declare it (build.rs
 * detects it), else a scan of the channel container. */
struct ast_channel *sbshim_channel_get_by_uniqueid(const char *uniqueid);
/* Queues a null frame: wakes a thread blocked in ast_waitfor() on the channel. */
int sbshim_channel_wake(struct ast_channel *chan);

/* Ends ast_channel_defer_dtmf(): clears the flag and re-arms the channel's
 * alert for each digit frame left on its read queue (ast_read consumed their
 * alerts while skipping them), so the next reader picks them up. */
void sbshim_channel_undefer_dtmf(struct ast_channel *chan);

/* A channel datastore for broadcasts started through the optional API:
 * `data` (owned by Rust) goes to sbrs_broadcast_datastore_destroy when the
 * channel is destroyed or the datastore detached. attach returns 0, or -1
 * (data not taken). detach frees every such datastore on the channel with
 * this uniqueid, if it still exists. */
int sbshim_channel_attach_broadcast_datastore(struct ast_channel *chan, void *data);
void sbshim_channel_detach_broadcast_datastores(const char *uniqueid);

/* Asterisk's optional API, where the headers have it (OPTIONAL_API in
 * buildopts.h); no-ops otherwise. */
void sbshim_optional_api_provide(const char *symname, void (*impl)(void));
void sbshim_optional_api_unprovide(const char *symname, void (*impl)(void));

/* Dialplan application registration. */
int sbshim_register_application(const char *name, int (*execute)(struct ast_channel *, const char *));

/* Stasis applications. The objects of a container (one ao2_callback walk)
 * into out[0..capacity); returns how many were stored. */
size_t sbshim_ao2_objects(struct ao2_container *container, void **out, size_t capacity);
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

/* The module-served claim endpoint (src/host/http.rs, src/host/acl.rs).
 * One static ast_http_uri for "ari/events/claim" lives in the shim, so it
 * stays put while linked; its callback is a guarded Rust function. */
#include "asterisk/http.h"
struct ast_sockaddr;
struct ast_str;
struct ao2_container;
void sbshim_http_claim_link(ast_http_callback callback);
void sbshim_http_claim_unlink(void);
/* The module-served API description (src/host/http.rs): one static
 * ast_http_uri for "ari/api-docs/events.json", linked only on an Asterisk
 * whose events.json lacks the broadcast entries. */
void sbshim_http_docs_link(ast_http_callback callback);
void sbshim_http_docs_unlink(void);
/* res_ari's own ast_ari_get_docs() for `file` under the docs URI's prefix:
 * the document (a reference the caller owns, or NULL), its status and the
 * status text (a static string). */
struct ast_json *sbshim_ari_get_docs(const char *file, struct ast_variable *headers,
	int *status, const char **reason);
/* ast_config_AST_DATA_DIR: where rest-api/ lives. */
const char *sbshim_data_dir(void);
/* ast_http_get_post_vars / ast_http_get_json, with the errno they leave. */
struct ast_variable *sbshim_http_get_post_vars(struct ast_tcptls_session_instance *ser,
	struct ast_variable *headers, int *error);
struct ast_json *sbshim_http_get_json(struct ast_tcptls_session_instance *ser,
	struct ast_variable *headers, int *error);
const struct ast_sockaddr *sbshim_http_remote_address(struct ast_tcptls_session_instance *ser);
/* An ast_str holding a copy of text (ast_str_create is a macro). */
struct ast_str *sbshim_str_from(const char *text);
void sbshim_ao2_cleanup(void *object);
int sbshim_fully_booted(void);

/* ARI's configuration reloads (sorcery-based ARI, Asterisk 20.15+/21.10+/22.5+):
 * observe the instance registered by module_name; returns it (a reference
 * the caller gives back to sbshim_sorcery_unobserve) or NULL. */
struct ast_sorcery;
struct ast_sorcery *sbshim_sorcery_observe(const char *module_name,
	void (*loaded)(const char *name, const struct ast_sorcery *sorcery, const char *object_type, int reloaded));
void sbshim_sorcery_unobserve(struct ast_sorcery *sorcery);

#endif
