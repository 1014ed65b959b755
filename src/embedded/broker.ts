import { createServer, type Server } from "node:net";
import { Aedes } from "aedes";

export interface EmbeddedBroker {
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * An MQTT broker inside the tera-cdc process (aedes), on 127.0.0.1:`port`. It speaks MQTT 3.1.1
 * only: the sink falls back to 3.1.1 by itself, and events then carry no user properties.
 */
export async function startEmbeddedBroker(port: number): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
  const server: Server = createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      // Clients are disconnected by closing the broker; the server then stops accepting.
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
