export interface CancelRoundCommand {
  roundId: string;
  requestedBy: string;
}
