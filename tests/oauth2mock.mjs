// oauth2mock.mjs - the token endpoint of tests/oauth2.py's real chain:
// oauth2-mock-server (npm) issues signed JWT access tokens and rotating
// refresh tokens at /token; this wrapper adds what Dovecot's oauth2 passdb
// and the test need and the package lacks (its /introspect answers
// {"active": true} to anything and neither it nor /revoke reads form bodies):
//   POST /introspect  RFC 7662: the token's signature (the mock's JWKS),
//                     issuer and expiry checked, and not revoked
//   POST /revoke      RFC 7009: revoke an access or a refresh token
//   GET  /stats       what happened, for the test's assertions
// Refresh tokens are single-use (rotation): the seed given on the command
// line, then each one the mock issued; any other is invalid_grant.
//
// Run from the npm prefix that holds node_modules/oauth2-mock-server:
//   node oauth2mock.mjs CERT KEY USERNAME SEED_REFRESH_TOKEN
// It prints {"port": N} once listening on 127.0.0.1, and runs until killed.

import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { OAuth2Issuer, OAuth2Service } from "oauth2-mock-server";
import { createLocalJWKSet, jwtVerify } from "jose";

const [certFile, keyFile, username, seed] = process.argv.slice(2);
const issuer = new OAuth2Issuer();
await issuer.keys.generate("RS256");
const service = new OAuth2Service(issuer);
const liveRefresh = new Set([seed]);
const revoked = new Set();
const stats = { refreshes: 0, refused_refreshes: 0, introspections: 0, active: 0 };

service.on("beforeResponse", (resp, req) => {
	if (req.body.grant_type === "refresh_token") {
		if (!liveRefresh.has(req.body.refresh_token)) {
			stats.refused_refreshes++;
			resp.statusCode = 400;
			resp.body = { error: "invalid_grant",
				      error_description: "refresh token revoked or unknown" };
			return;
		}
		liveRefresh.delete(req.body.refresh_token);
		stats.refreshes++;
	}
	if (resp.body.refresh_token)
		liveRefresh.add(resp.body.refresh_token);
});

function formOf(req) {
	return new Promise((resolve) => {
		let data = "";
		req.setEncoding("utf8");
		req.on("data", (c) => { if (data.length < 65536) data += c; });
		req.on("end", () => resolve(new URLSearchParams(data)));
	});
}

function send(res, status, body) {
	const text = JSON.stringify(body);
	res.writeHead(status, { "Content-Type": "application/json",
				"Content-Length": Buffer.byteLength(text) });
	res.end(text);
}

async function introspect(token) {
	stats.introspections++;
	if (!token || revoked.has(token))
		return { active: false };
	try {
		const jwks = createLocalJWKSet({ keys: issuer.keys.toJSON() });
		const { payload } = await jwtVerify(token, jwks, { issuer: issuer.url });
		stats.active++;
		return { active: true, username, scope: payload.scope, exp: payload.exp,
			 token_type: "Bearer" };
	} catch {
		return { active: false };
	}
}

const app = service.requestHandler;
const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) },
	async (req, res) => {
		if (req.method === "POST" && req.url === "/introspect") {
			const f = await formOf(req);
			return send(res, 200, await introspect(f.get("token")));
		}
		if (req.method === "POST" && req.url === "/revoke") {
			const t = (await formOf(req)).get("token");
			if (!liveRefresh.delete(t))
				revoked.add(t);
			return send(res, 200, {});
		}
		if (req.method === "GET" && req.url === "/stats")
			return send(res, 200, stats);
		return app(req, res);
	});

server.listen(0, "127.0.0.1", () => {
	const port = server.address().port;
	issuer.url = `https://localhost:${port}`;
	process.stdout.write(JSON.stringify({ port }) + "\n");
});
