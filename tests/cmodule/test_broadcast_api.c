/*
 * test_broadcast_api: a test-only Asterisk module that uses the optional API
 * of stasis_app_broadcast.h the way a C module would, so the integration
 * tests (tests/optional_api.rs) can prove what res_stasis_broadcast_rs
 * provides through it. Never installed; built by the test with `cc` against
 * the headers the module under test was built with.
 *
 * Dialplan applications (results go to channel variables, which the test's
 * dialplan copies into globals):
 *
 *   BroadcastApiRun(timeout_ms[,filter])
 *       broadcast_channel, wait, winner, then (with a winner) stasis_app_exec,
 *       then cleanup. Sets API_START, API_WAIT, API_WINNER, API_EXEC.
 *   BroadcastApiStart(timeout_ms[,filter])
 *       broadcast_channel only, never cleanup (a careless caller). Sets API_START.
 *   BroadcastApiWait(timeout_ms)
 *       wait with no broadcast started. Sets API_WAIT and API_WAIT_MS.
 *   BroadcastApiClaim(channel_id,app)
 *       stasis_app_claim_channel. Sets API_CLAIM.
 */

#define AST_MODULE "test_broadcast_api"
#define AST_MODULE_SELF_SYM __internal_test_broadcast_api_self

#include "asterisk.h"

#include "asterisk/app.h"
#include "asterisk/module.h"
#include "asterisk/pbx.h"
#include "asterisk/stasis_app_impl.h"
#include "asterisk/time.h"
#include "asterisk/utils.h"

#if defined(__has_include)
#  if __has_include("asterisk/stasis_app_broadcast.h")
#    define TEST_HAVE_BROADCAST_HEADER 1
#  endif
#endif

#ifdef TEST_HAVE_BROADCAST_HEADER
#include "asterisk/stasis_app_broadcast.h"
#else
/* Headers older than 20.20/22.10/23.4 lack stasis_app_broadcast.h: declare
 * the same optional functions here, as a C user on those versions would. */
#include "asterisk/optional_api.h"

#define STASIS_BROADCAST_FLAG_SUPPRESS_CLAIMED (1 << 0)

AST_OPTIONAL_API(int, stasis_app_broadcast_channel,
	(struct ast_channel *chan, int timeout_ms, const char *app_filter, unsigned int flags),
	{ return AST_OPTIONAL_API_UNAVAILABLE; });
AST_OPTIONAL_API(int, stasis_app_claim_channel,
	(const char *channel_id, const char *app_name),
	{ return AST_OPTIONAL_API_UNAVAILABLE; });
AST_OPTIONAL_API(char *, stasis_app_broadcast_winner,
	(const char *channel_id),
	{ return NULL; });
AST_OPTIONAL_API(int, stasis_app_broadcast_wait,
	(struct ast_channel *chan, int timeout_ms),
	{ return AST_OPTIONAL_API_UNAVAILABLE; });
AST_OPTIONAL_API(void, stasis_app_broadcast_cleanup,
	(const char *channel_id),
	{ return; });
#endif

static void set_int(struct ast_channel *chan, const char *name, long value)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", value);
	pbx_builtin_setvar_helper(chan, name, buf);
}

static int parse_timeout(const char *text)
{
	int timeout = 500;

	if (!ast_strlen_zero(text) && sscanf(text, "%d", &timeout) != 1) {
		timeout = 500;
	}
	return timeout;
}

static int run_exec(struct ast_channel *chan, const char *data)
{
	char *parse = ast_strdupa(S_OR(data, ""));
	char uniqueid[AST_MAX_UNIQUEID];
	char *winner;
	int timeout;
	int res;
	AST_DECLARE_APP_ARGS(args,
		AST_APP_ARG(timeout);
		AST_APP_ARG(filter);
	);

	AST_STANDARD_APP_ARGS(args, parse);
	timeout = parse_timeout(args.timeout);
	ast_copy_string(uniqueid, ast_channel_uniqueid(chan), sizeof(uniqueid));

	res = stasis_app_broadcast_channel(chan, timeout, S_OR(args.filter, NULL), 0);
	set_int(chan, "API_START", res);
	if (res) {
		return 0;
	}
	set_int(chan, "API_WAIT", stasis_app_broadcast_wait(chan, timeout));
	winner = stasis_app_broadcast_winner(uniqueid);
	pbx_builtin_setvar_helper(chan, "API_WINNER", S_OR(winner, ""));
	if (winner) {
		set_int(chan, "API_EXEC", stasis_app_exec(chan, winner, 0, NULL));
		ast_free(winner);
	}
	stasis_app_broadcast_cleanup(uniqueid);
	return ast_check_hangup(chan) ? -1 : 0;
}

static int start_exec(struct ast_channel *chan, const char *data)
{
	char *parse = ast_strdupa(S_OR(data, ""));
	AST_DECLARE_APP_ARGS(args,
		AST_APP_ARG(timeout);
		AST_APP_ARG(filter);
	);

	AST_STANDARD_APP_ARGS(args, parse);
	set_int(chan, "API_START", stasis_app_broadcast_channel(chan,
		parse_timeout(args.timeout), S_OR(args.filter, NULL), STASIS_BROADCAST_FLAG_SUPPRESS_CLAIMED));
	return 0;
}

static int wait_exec(struct ast_channel *chan, const char *data)
{
	struct timeval start = ast_tvnow();
	int res = stasis_app_broadcast_wait(chan, parse_timeout(data));

	set_int(chan, "API_WAIT", res);
	set_int(chan, "API_WAIT_MS", (long) ast_tvdiff_ms(ast_tvnow(), start));
	return 0;
}

static int claim_exec(struct ast_channel *chan, const char *data)
{
	char *parse = ast_strdupa(S_OR(data, ""));
	AST_DECLARE_APP_ARGS(args,
		AST_APP_ARG(channel_id);
		AST_APP_ARG(app);
	);

	AST_STANDARD_APP_ARGS(args, parse);
	set_int(chan, "API_CLAIM", stasis_app_claim_channel(S_OR(args.channel_id, ""), S_OR(args.app, "")));
	return 0;
}

static int unload_module(void)
{
	ast_unregister_application("BroadcastApiRun");
	ast_unregister_application("BroadcastApiStart");
	ast_unregister_application("BroadcastApiWait");
	ast_unregister_application("BroadcastApiClaim");
	return 0;
}

static int load_module(void)
{
	int res = 0;

	res |= ast_register_application("BroadcastApiRun", run_exec, NULL, NULL);
	res |= ast_register_application("BroadcastApiStart", start_exec, NULL, NULL);
	res |= ast_register_application("BroadcastApiWait", wait_exec, NULL, NULL);
	res |= ast_register_application("BroadcastApiClaim", claim_exec, NULL, NULL);
	if (res) {
		unload_module();
		return AST_MODULE_LOAD_DECLINE;
	}
	return AST_MODULE_LOAD_SUCCESS;
}

AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_DEFAULT, "stasis_app_broadcast.h optional API test module",
	.support_level = AST_MODULE_SUPPORT_EXTENDED,
	.load = load_module,
	.unload = unload_module,
	.requires = "res_stasis",
);
