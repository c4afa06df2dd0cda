// Binance's error answers (`{code, msg}` with its HTTP status), so clients written for
// Binance, ccxt among them, map our errors to the same exceptions as the real venue's.

export interface BinanceErrorBody {
  code: number;
  msg: string;
}

export class BinanceApiError extends Error {
  override readonly name = 'BinanceApiError';
  constructor(
    readonly code: number,
    msg: string,
    readonly httpStatus = 400,
  ) {
    super(msg);
  }

  toJSON(): BinanceErrorBody {
    return { code: this.code, msg: this.message };
  }
}

export const binanceErrors = {
  unknown: (msg = 'An unknown error occurred while processing the request.', status = 500) =>
    new BinanceApiError(-1000, msg, status),
  internal: () => new BinanceApiError(-1001, 'Internal error; unable to process your request. Please try again.', 503),
  unknownRoute: (method: string, url: string) => new BinanceApiError(-1000, `Unknown route: ${method} ${url}`, 404),
  timestampOutside: () => new BinanceApiError(-1021, 'Timestamp for this request is outside of the recvWindow.'),
  timestampAhead: () => new BinanceApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time."),
  badSignature: () => new BinanceApiError(-1022, 'Signature for this request is not valid.'),
  illegalChars: (param: string, range: string) =>
    new BinanceApiError(-1100, `Illegal characters found in parameter '${param}'; legal range is '${range}'.`),
  duplicateParam: (param: string) =>
    new BinanceApiError(-1101, `Duplicate values for a parameter detected: '${param}'.`),
  mandatory: (param: string) =>
    new BinanceApiError(-1102, `Mandatory parameter '${param}' was not sent, was empty/null, or malformed.`),
  eitherMandatory: (a: string, b: string) =>
    new BinanceApiError(-1102, `Param '${a}' or '${b}' must be sent, but both were empty/null!`),
  notRequired: (param: string) => new BinanceApiError(-1106, `Parameter '${param}' sent when not required.`),
  tooPrecise: (param: string) => new BinanceApiError(-1111, `Parameter '${param}' has too much precision.`),
  badTimeInForce: () => new BinanceApiError(-1115, 'Invalid timeInForce.'),
  badOrderType: () => new BinanceApiError(-1116, 'Invalid orderType.'),
  badSide: () => new BinanceApiError(-1117, 'Invalid side.'),
  badSymbol: () => new BinanceApiError(-1121, 'Invalid symbol.'),
  badLimit: () => new BinanceApiError(-1130, "Data sent for parameter 'limit' is not valid."),
  badOrderRespType: () => new BinanceApiError(-1136, 'Invalid newOrderRespType.'),
  badRecvWindow: () => new BinanceApiError(-1131, 'recvWindow must be less than 60000'),
  filterFailure: (filter: string) => new BinanceApiError(-1013, `Filter failure: ${filter}`),
  insufficientBalance: () => new BinanceApiError(-2010, 'Account has insufficient balance for requested action.'),
  duplicateOrder: () => new BinanceApiError(-2010, 'Duplicate order sent.'),
  unknownOrder: () => new BinanceApiError(-2011, 'Unknown order sent.'),
  noSuchOrder: () => new BinanceApiError(-2013, 'Order does not exist.'),
  badApiKeyFormat: () => new BinanceApiError(-2014, 'API-key format invalid.', 401),
  badApiKey: () => new BinanceApiError(-2015, 'Invalid API-key, IP, or permissions for action.', 401),
};
