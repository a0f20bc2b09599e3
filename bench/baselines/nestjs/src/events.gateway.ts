import {
  OnGatewayConnection,
  OnGatewayDisconnect,
  WebSocketGateway,
  WebSocketServer,
} from '@nestjs/websockets';
import type { Namespace, Socket } from 'socket.io';

/** The socket.io event every business event is emitted as (one frame per event). */
export const BUSINESS_EVENT = 'business:event';
/** The one the dashboard snapshot is emitted as. */
export const DASHBOARD_UPDATE = 'dashboard:update';
/** The seed kept the last 100 events for its dashboard. */
export const HISTORY_SIZE = 100;

export interface BusinessEvent {
  id: string;
  type: string;
  data: unknown;
  timestamp: string;
}

/**
 * The seed's gateway: socket.io on the HTTP server's port, engine.io path
 * `/socket.io`, namespace `/ws`. Socket.io's defaults otherwise: no
 * permessage-deflate, ping every 25 s.
 *
 * A client on a bare WebSocket:
 *   ws://HOST:PORT/socket.io/?EIO=4&transport=websocket
 *   <- 0{"sid":…}            engine.io open
 *   -> 40/ws,                 connect to the /ws namespace
 *   <- 40/ws,{"sid":…}        connected
 *   <- 42/ws,["business:event",{"id":…,"type":…,"data":…,"timestamp":…}]
 *   <- 2  -> 3                engine.io ping / pong
 */
@WebSocketGateway({ path: '/socket.io', namespace: '/ws', cors: { origin: '*' } })
export class EventsGateway implements OnGatewayConnection, OnGatewayDisconnect {
  @WebSocketServer()
  server: Namespace;

  readonly history: BusinessEvent[] = [];
  eventsEmitted = 0;
  private lastDashboard: unknown = null;

  handleConnection(_client: Socket): void {}

  handleDisconnect(_client: Socket): void {}

  get connections(): number {
    return this.server ? this.server.sockets.size : 0;
  }

  /**
   * `server.emit` is synchronous: socket.io encodes the packet (and the
   * WebSocket frame) once, then hands it to every connected socket in turn,
   * each either written to its socket now or queued behind that socket's
   * write in progress. It returns once every client has it.
   */
  emitBusinessEvent(event: BusinessEvent): void {
    this.history.push(event);
    if (this.history.length > HISTORY_SIZE) {
      this.history.shift();
    }
    this.eventsEmitted += 1;
    this.server.emit(BUSINESS_EVENT, event);
  }

  updateDashboard(snapshot: unknown): void {
    this.lastDashboard = snapshot;
    this.server.emit(DASHBOARD_UPDATE, snapshot);
  }

  get dashboard(): unknown {
    return this.lastDashboard;
  }
}
