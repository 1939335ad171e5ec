/*
 * res_stasis_broadcast_rs: the C side of the module.
 *
 * Declares the module to Asterisk with its own AST_MODULE_INFO macro, so the
 * module key, the struct layout and the build-options checksum are exactly
 * those of the headers the module is built against, and wraps the few
 * Asterisk constructs Rust cannot call (see include/shim.h). No logic here.
 */
#define AST_MODULE "res_stasis_broadcast_rs"
#define AST_MODULE_SELF_SYM __internal_res_stasis_broadcast_rs_self

#include "asterisk.h"

#include <errno.h>

#include "asterisk/app.h"
#include "asterisk/astobj2.h"
#include "asterisk/ari.h"
#include "asterisk/channel.h"
#include "asterisk/cli.h"
#include "asterisk/config.h"
#include "asterisk/datastore.h"
#include "asterisk/frame.h"
#include "asterisk/http.h"
#include "asterisk/options.h"
#include "asterisk/paths.h"
#include "asterisk/tcptls.h"
#include "asterisk/json.h"
#include "asterisk/logger.h"
#include "asterisk/module.h"
#include "asterisk/optional_api.h"
#include "asterisk/pbx.h"
#include "asterisk/sorcery.h"
#include "asterisk/stasis_app.h"
#include "asterisk/stasis_channels.h"
#include "asterisk/strings.h"
#include "asterisk/time.h"
#include "asterisk/utils.h"

#include "shim.h"

/* Implemented in Rust (src/entry.rs), each behind the panic guard. */
int load_module(void);
int unload_module(void);
int reload_module(void);

struct ast_module *sbshim_module_self(void)
{
	return AST_MODULE_SELF;
}

struct sbshim_running_call {
	const char *name;
	void (*fn)(void *);
	void *data;
	int ran;
};

/* Called by ast_update_module_list_data for each module, with the module
 * list locked. */
static int sbshim_running_entry(const char *module, const char *description, int usecnt,
	const char *status, const char *like, enum ast_module_support_level support_level, void *data)
{
	struct sbshim_running_call *call = data;

	(void) description;
	(void) usecnt;
	(void) like;
	(void) support_level;
	if (!call->ran && !strcasecmp(module, call->name) && !strcmp(status, "Running")) {
		call->ran = 1;
		call->fn(call->data);
	}
	return 0;
}

int sbshim_with_running_module(const char *name, void (*fn)(void *), void *data)
{
	struct sbshim_running_call call = { name, fn, data, 0 };

	ast_update_module_list_data(sbshim_running_entry, name, &call);
	return call.ran;
}

void sbshim_module_ref(void)
{
	ast_module_ref(AST_MODULE_SELF);
}

void sbshim_module_unref(void)
{
	ast_module_unref(AST_MODULE_SELF);
}

void sbshim_log(int level, const char *file, int line, const char *function, const char *message)
{
	ast_log(level, file, line, function, "%s\n", message);
}

void sbshim_log_text(int level, const char *file, int line, const char *function, const char *text, int length)
{
	ast_log(level, file, line, function, "%.*s\n", length, text);
}

void sbshim_verb_two(int level, const char *format, const char *first, int first_length,
	const char *second, int second_length)
{
	ast_verb(level, format, first_length, first, second_length, second);
}

void sbshim_verb(int level, const char *message)
{
	ast_verb(level, "%s\n", message);
}

int sbshim_verb_enabled(int level)
{
	return VERBOSITY_ATLEAST(level);
}

int sbshim_debug_enabled(int level)
{
	return DEBUG_ATLEAST(level);
}

/* LOG_ERROR and friends expand to "level, file, line, function": only the
 * level is wanted here. */
int sbshim_log_level_error(void) { return __LOG_ERROR; }
int sbshim_log_level_warning(void) { return __LOG_WARNING; }
int sbshim_log_level_notice(void) { return __LOG_NOTICE; }
int sbshim_log_level_debug(void) { return __LOG_DEBUG; }

char *sbshim_strdup(const char *s)
{
	return ast_strdup(s);
}

void sbshim_free(void *p)
{
	ast_free(p);
}

void sbshim_channel_ref(struct ast_channel *chan)
{
	ast_channel_ref(chan);
}

void sbshim_channel_unref(struct ast_channel *chan)
{
	ast_channel_unref(chan);
}

void sbshim_channel_caller_and_exten_json(struct ast_channel *chan,
	struct ast_json **caller, struct ast_json **exten)
{
	ast_channel_lock(chan);
	*caller = ast_json_string_create(S_OR(ast_channel_caller(chan)->id.number.str, ""));
	*exten = ast_json_string_create(S_OR(ast_channel_exten(chan), ""));
	ast_channel_unlock(chan);
}

/* Copies text, NUL included, into (buf, size) if it fits; leaves buf alone
 * otherwise. Returns the text's length. */
static size_t sbshim_copy(char *buf, size_t size, const char *text)
{
	size_t length;

	text = S_OR(text, "");
	length = strlen(text);
	if (length < size) {
		memcpy(buf, text, length + 1);
	}
	return length;
}

void sbshim_channel_copy_ids(struct ast_channel *chan,
	char *uniqueid, size_t uniqueid_size, size_t *uniqueid_length,
	char *name, size_t name_size, size_t *name_length)
{
	ast_channel_lock(chan);
	*uniqueid_length = sbshim_copy(uniqueid, uniqueid_size, ast_channel_uniqueid(chan));
	*name_length = sbshim_copy(name, name_size, ast_channel_name(chan));
	ast_channel_unlock(chan);
}

#ifndef SBSHIM_HAVE_CHANNEL_GET_BY_UNIQUEID
/* Before 20.15/21.10/22.5 there is no uniqueid index; ast_channel_get_by_name()
 * would also match a channel *named* like the id, so compare uniqueids only. */
static int sbshim_uniqueid_matches(void *obj, void *arg, void *data, int flags)
{
	(void) data;
	(void) flags;
	return strcasecmp(ast_channel_uniqueid(obj), arg) ? 0 : (CMP_MATCH | CMP_STOP);
}
#endif

struct ast_channel *sbshim_channel_get_by_uniqueid(const char *uniqueid)
{
#ifdef SBSHIM_HAVE_CHANNEL_GET_BY_UNIQUEID
	return ast_channel_get_by_uniqueid(uniqueid);
#else
	return ast_channel_callback(sbshim_uniqueid_matches, (char *) uniqueid, NULL, 0);
#endif
}

int sbshim_channel_wake(struct ast_channel *chan)
{
	return ast_queue_frame(chan, &ast_null_frame);
}

void sbshim_channel_undefer_dtmf(struct ast_channel *chan)
{
	struct ast_frame *f;
	int held = 0;

	ast_channel_lock(chan);
	ast_channel_undefer_dtmf(chan);
	/* While deferred, ast_read consumed the alert of each digit frame it left
	 * on the queue: give them back, or the next reader never wakes for them. */
	AST_LIST_TRAVERSE(ast_channel_readq(chan), f, frame_list) {
		if (f->frametype == AST_FRAME_DTMF_BEGIN || f->frametype == AST_FRAME_DTMF_END) {
			held++;
		}
	}
	if (ast_channel_alert_writable(chan)) {
		while (held-- > 0 && !ast_channel_alert_write(chan)) {
		}
	}
	ast_channel_unlock(chan);
}

/* Implemented in Rust (src/entry.rs), behind the panic guard. */
void sbrs_broadcast_datastore_destroy(void *data);

/* Marks a channel whose broadcast was started through the optional API: when
 * the channel goes, so does a broadcast its caller never cleaned up. The
 * datastore holds a reference to this module until it is freed. */
static const struct ast_datastore_info sbshim_broadcast_datastore = {
	.type = "res_stasis_broadcast_rs",
	.destroy = sbrs_broadcast_datastore_destroy,
};

int sbshim_channel_attach_broadcast_datastore(struct ast_channel *chan, void *data)
{
	struct ast_datastore *datastore = ast_datastore_alloc(&sbshim_broadcast_datastore, NULL);

	if (!datastore) {
		return -1;
	}
	datastore->data = data;
	ast_channel_lock(chan);
	ast_channel_datastore_add(chan, datastore);
	ast_channel_unlock(chan);
	return 0;
}

void sbshim_channel_detach_broadcast_datastores(const char *uniqueid)
{
	struct ast_channel *chan = sbshim_channel_get_by_uniqueid(uniqueid);
	struct ast_datastore *datastore;

	if (!chan) {
		return;
	}
	for (;;) {
		ast_channel_lock(chan);
		datastore = ast_channel_datastore_find(chan, &sbshim_broadcast_datastore, NULL);
		if (datastore) {
			ast_channel_datastore_remove(chan, datastore);
		}
		ast_channel_unlock(chan);
		if (!datastore) {
			break;
		}
		ast_datastore_free(datastore);
	}
	ast_channel_unref(chan);
}

/* An Asterisk built without the OPTIONAL_API compile option (menuselect)
 * declares no optional-API registry: nothing could look the functions up,
 * so there is nothing to provide them to. */
void sbshim_optional_api_provide(const char *symname, void (*impl)(void))
{
#if defined(OPTIONAL_API)
	ast_optional_api_provide(symname, impl);
#else
	(void) symname;
	(void) impl;
#endif
}

void sbshim_optional_api_unprovide(const char *symname, void (*impl)(void))
{
#if defined(OPTIONAL_API)
	ast_optional_api_unprovide(symname, impl);
#else
	(void) symname;
	(void) impl;
#endif
}

int sbshim_register_application(const char *name, int (*execute)(struct ast_channel *, const char *))
{
	return ast_register_application_xml(name, execute);
}

struct sbshim_objects {
	void **out;
	size_t capacity;
	size_t stored;
};

static int sbshim_store_object(void *obj, void *arg, int flags)
{
	struct sbshim_objects *objects = arg;

	(void) flags;
	if (obj && objects->stored < objects->capacity) {
		objects->out[objects->stored++] = obj;
	}
	return 0;
}

size_t sbshim_ao2_objects(struct ao2_container *container, void **out, size_t capacity)
{
	struct sbshim_objects objects = { .out = out, .capacity = capacity, .stored = 0 };

	ao2_callback(container, OBJ_NODATA, sbshim_store_object, &objects);
	return objects.stored;
}

int sbshim_stasis_app_is_registered(const char *name)
{
	struct stasis_app *app = stasis_app_get_by_name(name);

	ao2_cleanup(app);
	return app != NULL;
}

struct ast_json *sbshim_json_timestamp_now(void)
{
	return ast_json_timeval(ast_tvnow(), NULL);
}

struct ast_json *sbshim_channel_snapshot_json(const char *uniqueid)
{
	struct ast_channel_snapshot *snapshot = ast_channel_snapshot_get_latest(uniqueid);
	struct ast_json *json;

	if (!snapshot) {
		return NULL;
	}
	json = ast_channel_snapshot_to_json(snapshot, NULL);
	ao2_ref(snapshot, -1);
	return json;
}

int sbshim_cli_register_multiple(struct ast_cli_entry *entries, int count)
{
	return ast_cli_register_multiple(entries, count);
}

void sbshim_cli_print(int fd, const char *text)
{
	ast_cli(fd, "%s", text);
}

struct ast_config *sbshim_config_load(const char *filename, int *status)
{
	struct ast_flags flags = { 0 };
	struct ast_config *cfg = ast_config_load(filename, flags);

	if (cfg == CONFIG_STATUS_FILEINVALID) {
		*status = SBSHIM_CONFIG_INVALID;
		return NULL;
	}
	*status = cfg ? SBSHIM_CONFIG_LOADED : SBSHIM_CONFIG_MISSING;
	return cfg;
}

/* The module-served claim endpoint. */
static struct ast_http_uri sbshim_claim_uri = {
	.description = "Stasis broadcast claim (res_stasis_broadcast_rs)",
	.uri = "ari/events/claim",
	.has_subtree = 0,
	.data = NULL,
	.key = AST_MODULE,
};

void sbshim_http_claim_link(ast_http_callback callback)
{
	sbshim_claim_uri.callback = callback;
	ast_http_uri_link(&sbshim_claim_uri);
}

void sbshim_http_claim_unlink(void)
{
	ast_http_uri_unlink(&sbshim_claim_uri);
}

/* The module-served API description of ARI's events resource. */
static struct ast_http_uri sbshim_docs_uri = {
	.description = "ARI events API description, with broadcast events (res_stasis_broadcast_rs)",
	.uri = "ari/api-docs/events.json",
	.has_subtree = 0,
	.data = NULL,
	.key = AST_MODULE,
};

void sbshim_http_docs_link(ast_http_callback callback)
{
	sbshim_docs_uri.callback = callback;
	ast_http_uri_link(&sbshim_docs_uri);
}

void sbshim_http_docs_unlink(void)
{
	ast_http_uri_unlink(&sbshim_docs_uri);
}

struct ast_json *sbshim_ari_get_docs(const char *file, struct ast_variable *headers,
	int *status, const char **reason)
{
	struct ast_ari_response response = { .fd = -1, 0 };

	response.headers = ast_str_create(40);
	if (!response.headers) {
		*status = 500;
		*reason = "Internal Server Error";
		return NULL;
	}
	/* The prefix ast_http_uri_link gave our URI: the HTTP server's, as ARI's. */
	ast_ari_get_docs(file, sbshim_docs_uri.prefix, headers, &response);
	ast_free(response.headers);
	*status = response.response_code;
	*reason = response.response_text;
	return response.message;
}

const char *sbshim_data_dir(void)
{
	return ast_config_AST_DATA_DIR;
}

struct ast_variable *sbshim_http_get_post_vars(struct ast_tcptls_session_instance *ser,
	struct ast_variable *headers, int *error)
{
	struct ast_variable *vars = ast_http_get_post_vars(ser, headers);

	*error = errno;
	return vars;
}

struct ast_json *sbshim_http_get_json(struct ast_tcptls_session_instance *ser,
	struct ast_variable *headers, int *error)
{
	struct ast_json *json = ast_http_get_json(ser, headers);

	*error = errno;
	return json;
}

const struct ast_sockaddr *sbshim_http_remote_address(struct ast_tcptls_session_instance *ser)
{
	return &ser->remote_address;
}

struct ast_str *sbshim_str_from(const char *text)
{
	struct ast_str *str = ast_str_create(strlen(text) + 1);

	if (str) {
		ast_str_set(&str, 0, "%s", text);
	}
	return str;
}

void sbshim_ao2_cleanup(void *object)
{
	ao2_cleanup(object);
}

int sbshim_fully_booted(void)
{
	return ast_fully_booted ? 1 : 0;
}

void sbshim_str_append(struct ast_str **out, const char *text)
{
	ast_str_append(out, 0, "%s", text);
}

/* ARI's configuration reloads. */
static struct ast_sorcery_instance_observer sbshim_sorcery_observer;

struct ast_sorcery *sbshim_sorcery_observe(const char *module_name,
	void (*loaded)(const char *name, const struct ast_sorcery *sorcery, const char *object_type, int reloaded))
{
	struct ast_sorcery *sorcery = ast_sorcery_retrieve_by_module_name(module_name);

	if (!sorcery) {
		return NULL;
	}
	sbshim_sorcery_observer.object_type_loaded = loaded;
	if (ast_sorcery_instance_observer_add(sorcery, &sbshim_sorcery_observer)) {
		ast_sorcery_unref(sorcery);
		return NULL;
	}
	return sorcery;
}

void sbshim_sorcery_unobserve(struct ast_sorcery *sorcery)
{
	ast_sorcery_instance_observer_remove(sorcery, &sbshim_sorcery_observer);
	ast_sorcery_unref(sorcery);
}

AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER,
	"Stasis broadcast: offer a call to many ARI applications, first claim wins (Rust)",
	.support_level = AST_MODULE_SUPPORT_EXTENDED,
	.load = load_module,
	.unload = unload_module,
	.reload = reload_module,
	/* After AST_MODPRI_DEFAULT, res_prometheus's priority, so that at start-up
	 * a configured res_prometheus is running when this module registers its
	 * metrics. res_prometheus is deliberately not an optional module: the
	 * loader fails a module whose optional module is present but declined
	 * (module_deps_process_reqlist only skips an optional module that is
	 * absent), which is res_prometheus without prometheus.conf; and the
	 * reference the loader takes on an optional module is only taken at load.
	 * See src/host/prometheus.rs for how the metrics follow res_prometheus. */
	.load_pri = AST_MODPRI_DEFAULT + 1,
	/* res_ari_events: the module's claim node in ARI's tree extends that
	 * module's `events` node (src/host/ari_tree.rs), so the loader's
	 * reference keeps it loaded while this module is. */
	.requires = "res_stasis,res_ari,res_ari_events,res_http_websocket",
	/* Loaded first when configured: the C implementation so this module sees
	 * it and declines. */
	.optional_modules = "res_stasis_broadcast,app_stasis_broadcast",
);
