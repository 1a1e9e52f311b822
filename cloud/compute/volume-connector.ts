/**
 * The host side of a Cinder attachment (os-brick's role): the `file` connector checks the backing file is
 * there and gives the guest its next virtio device (vdb onwards; vda is the root disk). Kept in
 * `<hostDir>/state/volume-connections.json`; connecting and disconnecting are idempotent.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Clock } from '../clock';
import { CloudError } from '../errors';
import { JsonStateFile } from './state-file';
import type { VolumeConnection } from './types';

const connectionSchema = z.object({
  volumeId: z.string().nullable(),
  instanceUuid: z.string().nullable(),
  path: z.string(),
  device: z.string(),
  connectedAt: z.number(),
});
const connectorStateSchema = z.object({ connections: z.record(z.string(), connectionSchema) });
type ConnectorState = z.infer<typeof connectorStateSchema>;

/** Cinder's connection_info for the file backend. Not strict: Cinder may add fields the connector ignores. */
export const connectionInfoSchema = z.object({
  driverVolumeType: z.literal('file').optional(),
  path: z
    .string()
    .min(1)
    .max(4096)
    .refine((p) => path.isAbsolute(p), 'must be an absolute path'),
});
export type ConnectionInfo = z.input<typeof connectionInfoSchema>;

export const connectTargetSchema = z.strictObject({
  instanceUuid: z.string().uuid().optional(),
  volumeId: z.string().min(1).max(255).optional(),
});
export type ConnectTarget = z.input<typeof connectTargetSchema>;

const MAX_DEVICES = 25; // vdb … vdz

function connectionKey(info: { path: string }, target: z.infer<typeof connectTargetSchema>): string {
  return `${target.instanceUuid ?? '-'}|${target.volumeId ?? info.path}`;
}

export class VolumeConnector {
  private readonly file: JsonStateFile<ConnectorState>;

  constructor(
    hostDir: string,
    private readonly clock: Clock,
  ) {
    this.file = new JsonStateFile(
      path.join(hostDir, 'state', 'volume-connections.json'),
      connectorStateSchema,
      () => ({
        connections: {},
      }),
    );
  }

  async connect(
    info: z.infer<typeof connectionInfoSchema>,
    target: z.infer<typeof connectTargetSchema>,
    signal?: AbortSignal,
  ): Promise<VolumeConnection> {
    const isFile = await stat(info.path).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!isFile)
      throw new CloudError('NotFound', `Volume device not found at ${info.path}`, {
        path: info.path,
        volumeId: target.volumeId,
      });
    const key = connectionKey(info, target);
    return this.file.update(
      (state) => {
        const existing = state.connections[key];
        if (existing) return existing;
        const used = new Set(
          Object.values(state.connections)
            .filter((c) => c.instanceUuid === (target.instanceUuid ?? null))
            .map((c) => c.device),
        );
        let device: string | undefined;
        for (let i = 1; i <= MAX_DEVICES && !device; i++) {
          const candidate = `vd${String.fromCharCode(97 + i)}`;
          if (!used.has(candidate)) device = candidate;
        }
        if (!device) throw new CloudError('BadRequest', `No free device name left for ${key}`);
        const record: VolumeConnection = {
          volumeId: target.volumeId ?? null,
          instanceUuid: target.instanceUuid ?? null,
          path: info.path,
          device,
          connectedAt: this.clock.now(),
        };
        state.connections[key] = record;
        return record;
      },
      { signal },
    );
  }

  /** False if there was no such connection. */
  async disconnect(
    info: z.infer<typeof connectionInfoSchema>,
    target: z.infer<typeof connectTargetSchema>,
  ): Promise<boolean> {
    const key = connectionKey(info, target);
    return this.file.update((state) => {
      if (!state.connections[key]) return false;
      delete state.connections[key];
      return true;
    });
  }

  async disconnectInstance(instanceUuid: string): Promise<VolumeConnection[]> {
    return this.file.update((state) => {
      const gone: VolumeConnection[] = [];
      for (const [key, c] of Object.entries(state.connections)) {
        if (c.instanceUuid !== instanceUuid) continue;
        gone.push(c);
        delete state.connections[key];
      }
      return gone;
    });
  }

  async list(): Promise<VolumeConnection[]> {
    const state = await this.file.read();
    return Object.values(state.connections).sort(
      (a, b) => a.connectedAt - b.connectedAt || a.device.localeCompare(b.device),
    );
  }
}
