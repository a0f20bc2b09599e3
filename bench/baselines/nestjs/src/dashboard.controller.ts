import { randomUUID } from 'node:crypto';

import {
  BadRequestException,
  Body,
  Controller,
  Get,
  HttpCode,
  Post,
  Res,
} from '@nestjs/common';
import type { Response } from 'express';

import { BusinessEvent, EventsGateway } from './events.gateway';

interface EmitEventBody {
  type?: unknown;
  data?: unknown;
  timestamp?: unknown;
  id?: unknown;
}

/**
 * The seed's HTTP side, as its Django `WebSocketNotifier` calls it:
 * `POST /api/dashboard/emit-event` `{type, data, timestamp}` answers 202 once
 * the gateway's `server.emit` has handed the event to every client.
 * `Server-Timing: emit;dur=MS` says how long that `server.emit` took.
 */
@Controller('dashboard')
export class DashboardController {
  constructor(private readonly gateway: EventsGateway) {}

  @Post('emit-event')
  @HttpCode(202)
  emitEvent(
    @Body() body: EmitEventBody,
    @Res({ passthrough: true }) res: Response,
  ): { success: true; id: string } {
    if (body === null || typeof body !== 'object' || typeof body.type !== 'string') {
      throw new BadRequestException('type is required');
    }
    const event: BusinessEvent = {
      id: typeof body.id === 'string' ? body.id : randomUUID(),
      type: body.type,
      data: body.data ?? {},
      timestamp: typeof body.timestamp === 'string' ? body.timestamp : new Date().toISOString(),
    };
    const started = process.hrtime.bigint();
    this.gateway.emitBusinessEvent(event);
    const micros = Number(process.hrtime.bigint() - started) / 1000;
    res.setHeader('Server-Timing', `emit;dur=${(micros / 1000).toFixed(3)}`);
    return { success: true, id: event.id };
  }

  @Post('update-dashboard')
  @HttpCode(202)
  updateDashboard(@Body() body: unknown): { success: true } {
    this.gateway.updateDashboard(body ?? {});
    return { success: true };
  }

  @Get('history')
  history(): BusinessEvent[] {
    return this.gateway.history;
  }

  @Get('stats')
  stats(): { connections: number; eventsEmitted: number; dashboard: unknown } {
    return {
      connections: this.gateway.connections,
      eventsEmitted: this.gateway.eventsEmitted,
      dashboard: this.gateway.dashboard,
    };
  }
}

@Controller('health')
export class HealthController {
  constructor(private readonly gateway: EventsGateway) {}

  @Get()
  health(): { status: 'ok'; connections: number } {
    return { status: 'ok', connections: this.gateway.connections };
  }
}
