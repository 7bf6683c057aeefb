// PostGraphile v5 on the hub's PostgreSQL database: the peer `safeguarding-hub bench-peer`
// measures the hub against. No policy and no audit: it serves whatever the tables hold.
// Environment: PEER_DATABASE_URL (a libpq URL), PEER_PORT.
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

const connectionString = process.env.PEER_DATABASE_URL;
const port = Number(process.env.PEER_PORT);
if (!connectionString || !port) {
  console.error("set PEER_DATABASE_URL and PEER_PORT");
  process.exit(2);
}

const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [makePgService({ connectionString, schemas: ["public"] })],
  grafserv: { graphqlPath: "/graphql", watch: false, graphiql: false },
  grafast: { explain: false },
};

const pgl = postgraphile(preset);
const server = createServer();
server.on("error", (error) => {
  console.error(error);
  process.exit(1);
});
await pgl.createServ(grafserv).addTo(server);
server.listen(port, "127.0.0.1", () => console.log(`postgraphile ready on ${port}`));
